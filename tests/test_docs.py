"""The docs a newcomer meets: a short README whose links lead somewhere, man pages made from
--help's own parsers that man renders without a warning, and pip installing them with the bash
completion (issue 23)."""
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from clstr import manpage

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = {"clstr.1": manpage.clstr_page, "clstr-report.1": manpage.report_page}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_the_shipped_man_pages_are_what_the_parsers_make(name):
    with open(os.path.join(TOP, "docs", "man", name), encoding="utf-8") as f:
        shipped = f.read()
    assert shipped == PAGES[name](), f"docs/man/{name} is stale: run python3 -m clstr.manpage docs/man"


@pytest.mark.parametrize("name", sorted(PAGES))
def test_man_renders_the_pages_without_a_warning(name):
    path = os.path.join(TOP, "docs", "man", name)
    r = subprocess.run(["groff", "-ww", "-man", "-Tutf8", "-z", path], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, "")
    r = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
    assert (r.returncode, r.stderr) == (0, "")
    assert "SYNOPSIS" in r.stdout and "SEE ALSO" in r.stdout


def test_every_option_of_help_is_in_the_man_page():
    from clstr.cli import build_parser
    text = subprocess.run(["man", "-l", os.path.join(TOP, "docs", "man", "clstr.1")], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, MANWIDTH="200", MANPAGER="cat")).stdout
    plain = re.sub(r".\x08", "", text)
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in plain, flag
    assert "exit status" in plain.lower() and "130" in plain


def test_the_readme_is_short_and_its_links_lead_somewhere():
    with open(os.path.join(TOP, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert len(readme.splitlines()) <= 200  # five minutes' reading; the reference is in docs/
    for doc in ("nodes.md", "failures.md", "on-the-nodes.md", "output.md", "speed.md", "library.md"):
        assert f"docs/{doc}" in readme
    assert "man clstr" in readme and "completion" in readme
    for path in [os.path.join(TOP, "README.md")] + [os.path.join(TOP, "docs", f) for f in os.listdir(
            os.path.join(TOP, "docs")) if f.endswith(".md")]:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert os.path.exists(os.path.join(os.path.dirname(path), link)), f"{path}: {link}"


def test_pip_installs_the_man_pages_and_the_completion(tmp_path):
    # the wheel pip builds for `pip install .` (its build backend fetched as for that install), from
    # a copy of the tree: the build writes nothing into the checkout
    src = tmp_path / "src"
    shutil.copytree(TOP, src, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                             ".pytest_cache"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = [p for p in os.listdir(tmp_path) if p.endswith(".whl")]
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    for want in ("share/man/man1/clstr.1", "share/man/man1/clstr-report.1", "share/bash-completion/completions/clstr"):
        assert any(n.endswith(".data/data/" + want) for n in names), (want, names)


def _readme_commands():
    """Every clstr command line of the sh blocks of README.md and docs/*.md, and of the examples of
    --help and of --help-all and the man page, as written (a line ending in a backslash joined to
    the next)."""
    from clstr.cli import EPILOG, SHORT_HELP
    docs = [os.path.join(TOP, "README.md")] + sorted(
        os.path.join(TOP, "docs", f) for f in os.listdir(os.path.join(TOP, "docs")) if f.endswith(".md"))
    lines = []
    for path in docs:
        with open(path, encoding="utf-8") as f:
            for block in re.findall(r"```sh\n(.*?)```", f.read(), re.S):
                lines += block.replace("\\\n", " ").splitlines()
    for text in (SHORT_HELP, EPILOG):  # --help's examples, and --help-all's and the man page's
        examples = text.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
        lines += [ln.strip() for ln in examples]
    # the install and the testbed's lines are run by test_quickstart
    return [ln.split("  #")[0].strip() for ln in lines
            if re.search(r"(^|\| |; )clstr(-report)? ", ln) and not ln.startswith(("pip ", "python3 "))]


@pytest.mark.parametrize("line", _readme_commands())
def test_every_command_in_the_readme_and_help_runs_as_written(tmp_path, line):
    """Each as typed (a shell runs it: globs, $(...), pipes), planned with --dry-run since it names
    machines the suite does not have, in a directory holding the files it names (issue 36 item 1)."""
    for name, text in {"nodes.txt": "n1\nn2\n", "lab.txt": "lab01\n", "jobs.txt": "echo job 1\necho job 2\n",
                       "hosts.ini": "[web]\nweb1\nweb2\n", "app.conf": "k=v\n", "scripts/run.sh": "true\n",
                       "simulate": "#!/bin/sh\n", "data/a.tsv": "b 2\na 1\n", "genders": "node01 compute\n",
                       "more-nodes.txt": "n3\n", "data/a.txt": "b\na\n",
                       "xdg/clstr/profiles.yaml": "lab-machines: ['lab[01-04]']\nlab: ['lab[01-02]']\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    bin_dir = os.path.dirname(shutil.which("clstr") or sys.executable)
    # the commands --connect and --slurm look for, stand-ins: a plan runs none of them
    stand_ins = tmp_path / "stand-ins"
    stand_ins.mkdir()
    for tool in ("docker", "kubectl", "lxc-attach", "podman", "srun", "squeue", "scancel"):
        (stand_ins / tool).write_text("#!/bin/sh\nexit 1\n")
        (stand_ins / tool).chmod(0o755)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), CLSTR_GENDERS=str(tmp_path / "genders"),
               PATH=f"{bin_dir}:{os.environ['PATH']}:{stand_ins}")
    env.pop("CLSTR_PROFILES", None)
    if "--slurm" in line:  # as inside an allocation of cn[01-04]
        env.update(SLURM_JOB_ID="7", SLURM_JOB_NODELIST="cn[01-04]", SLURM_JOB_CPUS_PER_NODE="4(x4)")
    if "clstr-report" in line:  # the page of a run's --json: a real run's, here on this machine
        subprocess.run([sys.executable, "-m", "clstr", "-n", ":", "--json", "run.json", "-j", "true", "-j", "exit 3",
                        "--job-failures", "job"], cwd=tmp_path, capture_output=True, timeout=60)
    planned = re.sub(r"(^|\| )clstr ", r"\1clstr --dry-run ", line, count=1)
    # bash: the man page's examples use its <(...)
    r = subprocess.run(["bash", "-c", "generate_jobs() { echo 'echo hi'; }; " + planned], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{line}\n{r.stderr}"
    if "clstr-report" in line:
        page = (tmp_path / "run.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and 'data-count="1"' in page  # its failure, first
