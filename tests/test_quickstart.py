"""A newcomer's first minute: the README's commands, as written, and what happens without sshd."""
import os
import re
import shutil
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


def readme_block(pattern):
    """The first command of README.md's sh blocks that ``pattern`` matches (its group 1)."""
    text = open(os.path.join(TOP, "README.md")).read()
    m = re.search(r"```sh\n" + pattern + r"\n```", text)
    assert m, f"README.md has no command of the form {pattern!r}"
    return m.group(1)


def test_readme_quick_start_runs_real_jobs_with_nothing_but_python(tmp_path):
    # clstr is installed by the test command (pip install -e .): the rest runs as a newcomer types it,
    # with no ssh on the PATH
    command = readme_block(r"pip install \. && (clstr -n 4/: [^\n]+)")
    bare = tmp_path / "bin"  # a PATH with no ssh on it
    bare.mkdir()
    for tool in ("clstr", "hostname", "sh"):
        os.symlink(shutil.which(tool), bare / tool)
    r = subprocess.run([shutil.which("bash"), "-c", command], capture_output=True, text=True, cwd=TOP, timeout=120,
                       env=dict(os.environ, PATH=str(bare)))
    assert r.returncode == 0, r.stderr
    host = socket.gethostname()
    assert sorted(r.stdout.splitlines()) == [f"{x} from {host}" for x in "abcd"]


def test_readme_quick_start_over_real_ssh():
    r = subprocess.run(["bash", "-c", readme_block(r"(python3 tests/sshnodes\.py -- clstr [^\n]+)")],
                       capture_output=True, text=True, cwd=TOP, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert len(out) == 2 and any(line.startswith("hello from 127.0.0.1 ") for line in out), out


def test_missing_sshd_is_one_line():
    r = subprocess.run([sys.executable, os.path.join(HERE, "sshnodes.py"), "--no-install", "--", "true"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, CLSTR_TESTBED_SSHD="/nonexistent/sshd"))
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == ("sshnodes: /nonexistent/sshd not found: install OpenSSH's server "
                        "(Debian/Ubuntu: apt-get install openssh-server)\n")
