"""--sudo against a real sudo: non-root login users of the testbed's nodes, with sudoers rules with
and without NOPASSWD and with requiretty (tests/sudonodes.py makes them, as root).

A password is asked once (the terminal, through a pty here; or the library's sudo_password), only
when a node's sudo asks; it never reaches a job's stdin, an argv or an environment on the node (a
job as root reads every process's argv and environment while the run goes on); a wrong password
costs each node one try and the node is not probed again.
"""
import json
import os
import pty
import select
import signal
import sys
import time

import pytest

import clstr
from clstr import sudo
import sudonodes
from sudonodes import PASSWORD, USERS

PW, NP, TTY, NO = (USERS[k] for k in ("pw", "np", "tty", "no"))
# finds the password where a process shows it, without showing it in its own argv
LEAK_CHECK = ("ps -eo args | grep -c 'clstr-Right-p[w]-7'; "
              "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c 'clstr-Right-p[w]-7'; true")


# ---- sudo's words --------------------------------------------------------------------------
@pytest.mark.parametrize("words,reason", [
    (b"sudo: a password is required", sudo.ASKS),
    ("Sorry, try again. sudo: 1 incorrect password attempt", sudo.WRONG),
    ("sudo: no password was provided", sudo.WRONG),
    ("sudo: sorry, you must have a tty to run sudo", sudo.TTY),
    ("clstr-t-no is not in the sudoers file.", sudo.NOT_ALLOWED),
    ("Sorry, user x is not allowed to execute '/bin/true' as root on n1.", sudo.NOT_ALLOWED),
    ("sh: 1: sudo: not found", sudo.MISSING),
    ("sudo: the moon is in the wrong phase", "sudo: the moon is in the wrong phase"),
    ("", "sudo: refused"),
])
def test_sudos_own_words_become_the_reason(words, reason):
    assert sudo.reason(words) == reason


@pytest.mark.parametrize("user", ["", "-u", "a b", "o'hara", "x\\y"])
def test_a_sudo_user_that_is_no_name_is_refused(user):
    with pytest.raises(ValueError):
        sudo.check_user(user)


# ---- against a real sudo -------------------------------------------------------------------
@pytest.fixture(scope="module")
def users(testbed):
    why = sudonodes.ensure(testbed.client_key + ".pub")
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def asking(answer):
    """A sudo_password for clstr.run that records the nodes it was asked for."""
    calls = []

    def ask(node):
        calls.append(node)
        return answer
    return ask, calls


def run(testbed, jobs, nodes, out, **kw):
    with open(out, "w+b") as f:
        r = clstr.run(jobs, nodes, ssh=testbed.ssh, connect_timeout=3, sudo=True, stdout=f, stderr=False, **kw)
        f.seek(0)
        return r, f.read().decode()


def test_a_nopasswd_node_runs_jobs_as_root_and_is_asked_nothing(clstr, users):
    # no terminal, stdin not one: had a node asked, the run would have had no password to give
    r = clstr("-n", f"2/{NP}@n1", f"{NP}@n2", "--sudo", "-j", "id -un", "-j", "cat; echo read-nothing",
              "-j", "id -u", input="not for the job\n")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == ["0", "read-nothing", "root"]
    assert "password" not in r.stderr
    r = clstr("-n", f"{NP}@n1", "--sudo-user", NO, "-j", "id -un")
    assert (r.returncode, r.stdout) == (0, f"{NO}\n"), r.stderr
    # a service account (its shell nologin): the job runs by the login user's shell, as any job does
    r = clstr("-n", f"{NP}@n1", "--sudo-user", "nobody", "-j", "id -un; echo $0")
    assert (r.returncode, r.stdout) == (0, "nobody\n/bin/sh\n"), r.stderr


@pytest.mark.parametrize("mode", [[], ["--no-pipeline"]], ids=["pipelined", "session-a-job"])
def test_a_password_is_asked_once_and_reaches_no_job_argv_or_environment(testbed, tmp_path, users, mode):
    ask, calls = asking(PASSWORD)
    jobs = ["id -un", "cat; echo read-nothing", LEAK_CHECK, "id -u", "id -un", "env"]
    r, out = run(testbed, jobs, [f"2/{PW}@n1", f"{PW}@n2", f"{NP}@n3"], tmp_path / "out", sudo_password=ask,
                 pipeline=not mode)
    assert [j.outcome for j in r.jobs] == ["succeeded"] * len(jobs), r.jobs
    assert len(calls) == 1 and calls[0].startswith(PW)
    assert PASSWORD not in out
    assert out.splitlines().count("root") == 2 and "read-nothing" in out.splitlines()
    counts = [line for line in out.splitlines() if line.isdigit() and line != "0"]
    assert counts == [], out  # the leak check counted nothing


def test_the_terminal_is_asked_once_without_echo(testbed, tmp_path, users):
    argv = [sys.executable, "-m", "clstr", "--ssh", testbed.ssh, "--connect-timeout", "3", "--sudo",
            "-n", f"2/{PW}@n1", f"{PW}@n2", "--joblog", str(tmp_path / "log"), "--json", str(tmp_path / "r.json"),
            "--", "id -un; cat; : {}", ":::", "1", "2", "3", "4"]
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(tmp_path)
        os.execv(sys.executable, argv)
    seen, sent, deadline = b"", False, time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], deadline - time.monotonic())[0]:
                break
            try:
                data = os.read(fd, 4096)
            except OSError:  # the child ended: the pty's other side is gone
                break
            if not data:
                break
            seen += data
            if not sent and b"asks for a password" in seen:
                os.write(fd, PASSWORD.encode() + b"\n")
                sent = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    text = seen.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert text.count("asks for a password") == 1 and PASSWORD not in text
    assert text.count("root") == 4
    result = json.loads((tmp_path / "r.json").read_text())
    assert [j["outcome"] for j in result["jobs"]] == ["succeeded"] * 4
    assert PASSWORD not in (tmp_path / "log").read_text() + (tmp_path / "r.json").read_text()


def test_a_wrong_password_costs_each_node_one_try_and_no_probe(testbed, tmp_path, users):
    ask, calls = asking("not-" + PASSWORD)
    r, out = run(testbed, ["id -un"] * 3, [f"{PW}@n1", f"{PW}@n2"], tmp_path / "out", sudo_password=ask,
                 reprobe=0.2, reprobe_for=2)
    assert len(calls) == 1 and out == ""
    assert all(j.outcome == "not run" and j.reason.startswith("no usable node left") for j in r.jobs), r.jobs
    tried = [(a.node, a.reason) for j in r.jobs for a in j.attempts]
    wrong = "node unusable: " + sudo.WRONG
    assert sorted(tried) == [(f"{PW}@n1", wrong), (f"{PW}@n2", wrong)], tried  # once a node
    assert r.retired_nodes == {f"{PW}@n1": sudo.WRONG, f"{PW}@n2": sudo.WRONG}
    assert sorted(r.permanent) == [f"{PW}@n1", f"{PW}@n2"]
    assert all(a.probes == 0 for h in r.history.values() for a in h)


def test_requiretty_and_sudoers_refusals_are_named(clstr, testbed, tmp_path, users):
    r = clstr("-n", f"{TTY}@n1", "--sudo", "-j", "id -un")
    assert r.returncode == 1 and r.stdout == ""
    assert f"node {TTY}@n1 retired: {sudo.TTY}" in r.stderr
    ask, calls = asking(PASSWORD)
    r, out = run(testbed, ["id -un"], [f"{NO}@n1"], tmp_path / "out", sudo_password=ask)
    assert r.retired_nodes == {f"{NO}@n1": sudo.NOT_ALLOWED} and out == ""
    # no password to give (no terminal): the node that asks runs nothing, saying so
    r = clstr("-n", f"{PW}@n1", "--sudo", "-j", "id -un")
    assert r.returncode == 1 and sudo.NONE_GIVEN in r.stderr


def test_sudo_on_each_node_and_with_files(testbed, tmp_path, users):
    ask, calls = asking(PASSWORD)
    r, out = run(testbed, [], [f"{PW}@n1", f"{PW}@n2"], tmp_path / "out", sudo_password=ask,
                 on_each_node="id -un; cat")
    assert [j.outcome for j in r.jobs] == ["succeeded"] * 2 and out == "root\nroot\n" and len(calls) == 1
    (tmp_path / "in.txt").write_text("payload\n")
    os.chdir(tmp_path)
    r, out = run(testbed, ["cat in.txt > in.txt.out; id -un >> in.txt.out"], [f"{NP}@n1"], tmp_path / "out2",
                 inputs=[("in.txt",)], transferfile=["{}"], returnfile=["{}.out"], workdir="...", cleanup=True)
    assert [j.outcome for j in r.jobs] == ["succeeded"], r.jobs
    assert (tmp_path / "in.txt.out").read_text() == "payload\nroot\n"


def test_sudo_through_a_gateway(testbed, tmp_path, users):
    ask, calls = asking(PASSWORD)
    r, out = run(testbed, ["id -un", "id -u; cat"], [f"{PW}@n2"], tmp_path / "out", sudo_password=ask,
                 gateways={"n1": f"{PW}@n2"})
    assert [j.outcome for j in r.jobs] == ["succeeded"] * 2, r.jobs
    assert sorted(out.split()) == ["0", "root"] and len(calls) == 1


def test_a_profile_says_sudo_and_bad_values_are_one_line(clstr, tmp_path, users):
    (tmp_path / "p.yaml").write_text(f"lab:\n  nodes: [\"{NP}@n1\"]\n  sudo: true\n")
    (tmp_path / "bad.yaml").write_text("bad:\n  nodes: [n1]\n  sudo: 5\n")
    r = clstr("--profiles", str(tmp_path / "p.yaml"), "-p", "lab", "-j", "id -un")
    assert (r.returncode, r.stdout) == (0, "root\n"), r.stderr
    for args, words in [(["--profiles", str(tmp_path / "bad.yaml"), "-p", "bad"], f"{tmp_path / 'bad.yaml'}:3"),
                        (["-n", "n1", "--sudo-user", "a b"], "--sudo-user 'a b': not a user name"),
                        (["-n", "n1", "--sudo", "--no-remote-cleanup"], "--sudo needs the remote wrapper")]:
        r = clstr("--profiles", str(tmp_path / "p.yaml"), *args, "-j", "id -un")
        assert r.returncode == 2 and r.stdout == "" and words in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) == 1, r.stderr


def test_a_password_given_through_the_library_as_text(testbed, tmp_path, users):
    r, out = run(testbed, ["id -un"], [f"{PW}@n1"], tmp_path / "out", sudo_password=PASSWORD)
    assert out == "root\n"
    with pytest.raises(TypeError):
        clstr.run(["true"], ["n1"], ssh=testbed.ssh, sudo=True, sudo_password=5)


@pytest.mark.parametrize("mode", [[], ["--no-pipeline"]], ids=["pipelined", "session-a-job"])
def test_a_root_job_that_ignores_the_term_is_killed_at_its_time_limit(clstr, users, mode):
    # the KILL after the TERM is sent as the login user, who cannot signal root's processes; a watcher
    # of sudo, as root beside the job, ends the job's group when sudo dies (issue 34 item 2)
    import uuid
    from conftest import processes_with, wait_for
    marker = f"clstr-sudo-{uuid.uuid4().hex[:10]}"
    r = clstr("-n", f"{NP}@n1", "--sudo", *mode, "--timeout", "1", "--job-failures", "job", "--json", "r.json",
              "-j", f"trap '' TERM; sleep 60 # {marker}", "-j", "exit 4")
    assert r.returncode == 1, r.stderr
    ends = {j["command"][:4]: (j["outcome"], j["attempts"][-1]["ending"], j["exit"])
            for j in json.loads((clstr.cwd / "r.json").read_text())["jobs"]}
    assert ends["trap"][:2] == ("failed", "timeout") and ends["exit"] == ("failed", "exit", 4)  # statuses exact
    assert wait_for(lambda: not processes_with(marker), 15), processes_with(marker)
