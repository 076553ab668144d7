"""A newcomer's first minute: the README's commands, as written, and what happens without sshd."""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


def readme_quick_start():
    """The quick-start command line of README.md, after its `pip install . &&`."""
    text = open(os.path.join(TOP, "README.md")).read()
    m = re.search(r"```sh\npip install \. && (python3 tests/sshnodes\.py -- clstr [^\n]+)\n```", text)
    assert m, "README.md has no quick-start command of the form 'pip install . && python3 tests/sshnodes.py ...'"
    return m.group(1)


def test_readme_quick_start_runs_a_real_job():
    # clstr is installed by the test command (pip install -e .): the rest runs as a newcomer types it
    r = subprocess.run(["bash", "-c", readme_quick_start()], capture_output=True, text=True, cwd=TOP, timeout=120)
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
