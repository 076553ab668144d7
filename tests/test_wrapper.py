"""The remote cleanup wrapper, run by real local shells as sshd would run it (``$SHELL -c LINE``).

Each test runs the wrapper line in a session of its own (the watcher TERMs its
process group), with stdin a pipe the test holds open like clstr's ssh would.
No ssh here: what the shells make of the line is the point. tests/run installs
tcsh, zsh, fish and ksh; a shell this machine lacks is reported as skipped.
"""
import os
import re
import shutil
import subprocess

import psutil
import pytest

from clstr import ssh
from conftest import wait_for

SHELLS = ["bash", "dash", "zsh", "ksh", "tcsh", "fish"]
POSIXISH = ["bash", "dash", "zsh", "ksh"]  # shells whose job syntax the jobs below use


def shell_path(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (tests/run installs it)")
    return path


WRAPPER = ssh.Wrapper("t0k3n" * 4)


class LoginShell:
    """A login shell run as sshd runs one (``shell -c line``), in a session of its own, stdin a
    pipe we hold; what is left of its session can be listed and is killed by ``end``."""

    def __init__(self, shell, line, env_shell=None, path=None):
        r, self.stdin = os.pipe()
        self.proc = subprocess.Popen([shell, "-c", line], stdin=r, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     env=dict(os.environ, SHELL=env_shell or shell, PATH=path or os.environ["PATH"]))
        os.close(r)

    def close_stdin(self):
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None

    def session(self):
        """Processes still in the shell's session (the watcher or the loop, background jobs)."""
        sid = self.proc.pid
        found = []
        for p in psutil.process_iter():
            try:
                if os.getsid(p.pid) == sid and p.pid != self.proc.pid:
                    found.append(p)
            except (ProcessLookupError, PermissionError, psutil.Error):
                pass
        return found

    def end(self):
        self.close_stdin()
        for p in self.session():
            try:
                p.kill()
            except psutil.Error:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Remote(LoginShell):
    """The login shell ``shell`` running the wrapped ``job``."""

    def __init__(self, shell, job, env_shell=None, path=None):
        line, feed = WRAPPER.line(job)
        super().__init__(shell, line, env_shell, path)
        if feed is not None:
            os.write(self.stdin, feed)  # a test's long job fits the pipe
        self.marks = []

    def finish(self):
        """(exit status, stdout, stderr without the marks); the marks are kept in ``self.marks``."""
        out, err = self.proc.communicate(timeout=20)
        err, self.marks = WRAPPER.strip(err)
        if self.marks and self.marks[0][0] == "s":
            # the start mark names the wrapper's shell, which the node is asked about if the end
            # mark never comes: the login shell itself (or the sh it became by exec)
            assert self.marks[0] == ("s", self.proc.pid)
            self.marks[0] = ("s",)
        return self.proc.returncode, out.decode(), err.decode()


def living(p):
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def remote():
    started = []

    def start(*args, **kw):
        started.append(Remote(*args, **kw))
        return started[-1]
    yield start
    for r in started:
        r.end()


@pytest.mark.parametrize("name", SHELLS)
def test_job_runs_in_login_shell_with_its_exit_status(remote, name):
    shell = shell_path(name)
    r = remote(shell, "printf '%s|%s|%s\\n' \"it's\" '$HOME' a\\\\b; exit 3")
    code, out, err = r.finish()
    assert (code, out, err) == (3, "it's|$HOME|a\\b\n", "")
    assert r.marks == [("s",), ("e", 3)]


@pytest.mark.parametrize("name", SHELLS)
@pytest.mark.parametrize("job,status", [("exit 255", 255), ("exec sh -c 'exit 7'", 7),
                                        ("sh -c 'kill -KILL $$'", 137)])
def test_marks_give_the_exact_status_whatever_the_job_does(remote, name, job, status):
    """exit 255, exec and a job killed by a signal still get their end mark with the exact status."""
    r = remote(shell_path(name), job)
    code, _, err = r.finish()
    assert r.marks == [("s",), ("e", status)]
    assert code == status


@pytest.mark.parametrize("name", POSIXISH)
def test_end_mark_after_an_unterminated_stderr_line(remote, name):
    r = remote(shell_path(name), "printf unterminated >&2; exit 4")
    assert r.finish() == (4, "", "unterminated\n")
    assert r.marks == [("s",), ("e", 4)]


@pytest.mark.parametrize("name", POSIXISH)
def test_forged_marks_of_another_token_are_the_jobs_own_output(remote, name):
    r = remote(shell_path(name), "echo 0000000000000000:e:0 >&2; echo Permission denied >&2; exit 1")
    code, _, err = r.finish()
    assert code == 1 and r.marks == [("s",), ("e", 1)]
    assert err == "0000000000000000:e:0\nPermission denied\n"


@pytest.mark.parametrize("name", SHELLS)
def test_job_too_long_for_one_argument_travels_on_stdin(remote, name):
    job = "echo " + "x" * 120_000 + " | wc -c"  # too long for the wrapper's line, not for sh -c
    line, feed = WRAPPER.line(job)
    assert len(line) < 2000 and "x" * 100 not in line and feed == job.encode()
    r = remote(shell_path(name), job)
    code, out, _ = r.finish()
    assert (code, out.strip(), r.marks) == (0, "120001", [("s",), ("e", 0)])


def group_members(pgid):
    found = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and living(p):
                found.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    return found


@pytest.mark.parametrize("name", SHELLS)
def test_job_ignoring_sigterm_is_killed_after_the_grace(remote, name):
    r = remote(shell_path(name), "sh -c 'trap \"\" TERM; echo started $$; sleep 60; echo not ended'")
    line = r.proc.stdout.readline()
    assert line.startswith(b"started ")
    group = os.getpgid(int(line.split()[1]))  # the job's own process group (setsid)
    r.close_stdin()  # the watcher TERMs the job's group, which the job ignores, then KILLs it
    code, out, _ = r.finish()
    # the wrapper outlives the job and reports it: KILLed, or TERMed where the job's shell
    # (dash, running `sh -c` as a child) dies of the TERM its child ignores
    assert out == "" and code in (137, 143)
    assert r.marks == [("s",), ("e", code)]
    # the watcher's KILL reaches itself too, a moment after the job's pipes closed
    assert wait_for(lambda: not group_members(group) and not [p for p in r.session() if living(p)], 10.0)


def plain(shell, job):
    """What plain ``ssh node 'job'`` gives: (status, stdout, stderr) of ``shell -c job`` in a session
    of its own, stdin /dev/null."""
    p = subprocess.run([shell, "-c", job], stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True,
                       env=dict(os.environ, SHELL=shell), timeout=20)
    code = p.returncode if p.returncode >= 0 else 128 - p.returncode
    return code, p.stdout.decode(), p.stderr.decode()


@pytest.mark.parametrize("name", SHELLS)
@pytest.mark.parametrize("job", ["trap 'kill 0' EXIT; echo cleaning", "kill 0; echo after", "sh -c 'kill -9 0'"])
def test_job_that_ends_its_process_group_ends_alone(remote, name, job):
    """`kill 0` (the cleanup idiom `trap "kill 0" EXIT`) reaches the job's group, which holds the
    job alone: the wrapper lives on and writes its end mark with the status the job got, the
    same status and output as plain ssh gives."""
    shell = shell_path(name)
    r = remote(shell, job)
    code, out, err = r.finish()
    assert r.marks == [("s",), ("e", code)]
    assert (code, out, err) == plain(shell, job)


@pytest.mark.parametrize("name", POSIXISH)
def test_job_leads_a_process_group_of_its_own(remote, name):
    r = remote(shell_path(name), "ps -o pgid= -p $$; echo $$")
    code, out, _ = r.finish()
    pgid, pid = out.split()
    assert code == 0 and pgid == pid  # the job's shell leads its group: the wrapper is not in it


@pytest.mark.parametrize("name", SHELLS)
@pytest.mark.parametrize("job", ["sh -c 'kill -KILL $$'", "kill -SEGV $$", "sh -c 'kill -TERM $$'; echo on"])
def test_signalled_job_says_what_plain_ssh_says(remote, name, job):
    """A shell says "Killed" of a foreground child ended by a signal: the wrapper's own shell
    says nothing (its stderr is not the job's), the job's shell says what it says with plain ssh."""
    shell = shell_path(name)
    r = remote(shell, job)
    pids = lambda result: (result[0], result[1], re.sub(r"\d+", "N", result[2]))  # noqa: E731  ksh names a pid
    assert pids(r.finish()) == pids(plain(shell, job))


@pytest.mark.parametrize("name", SHELLS)
def test_job_reads_dev_null(remote, name):
    r = remote(shell_path(name), "cat; echo done")
    code, out, _ = r.finish()  # our stdin stays open: cat ends only because it reads /dev/null
    assert (code, out) == (0, "done\n")


@pytest.mark.parametrize("name", POSIXISH)
def test_own_wait_does_not_wait_for_watcher(remote, name):
    r = remote(shell_path(name), "sleep 0 & wait; echo waited")
    code, out, _ = r.finish()  # would hang (and time out) if the watcher were the job's child
    assert (code, out) == (0, "waited\n")


@pytest.mark.parametrize("name", SHELLS)
def test_closing_stdin_ends_running_job(remote, name):
    r = remote(shell_path(name), "echo started; sleep 60; echo not ended")
    assert r.proc.stdout.readline() == b"started\n"
    r.close_stdin()  # what a killed ssh or a dropped connection does
    code, out, _ = r.finish()
    assert code == 143 and out == ""  # the job got TERM; the wrapper outlives it and says so
    assert r.marks == [("s",), ("e", 143)]


@pytest.mark.parametrize("name", POSIXISH)
def test_background_process_of_finished_job_left_alone(remote, name):
    r = remote(shell_path(name), "sleep 60 >/dev/null 2>&1 & echo $!")
    code, out, _ = r.finish()
    assert code == 0
    bg = int(out)
    r.close_stdin()  # the watcher wakes, finds the job's shell gone and exits without killing
    others = [p for p in r.session() if p.pid != bg]
    gone, alive = psutil.wait_procs(others, timeout=10)
    assert not alive
    assert psutil.pid_exists(bg) and psutil.Process(bg).status() != psutil.STATUS_ZOMBIE


def test_unknown_shell_path_takes_universal_route(remote, tmp_path):
    """A login shell at a path not in INLINE_SHELLS hands the job to $SHELL through sh."""
    bash = shell_path("bash")
    dash = shell_path("dash")
    # dash reads the line (as the login shell), but $SHELL names bash at a path of its own:
    # the universal route runs the job with that bash, the inline one would run it in dash
    alias = tmp_path / "mybash"
    alias.symlink_to(bash)
    r = remote(dash, 'echo "${BASH_VERSION:+bash}"', env_shell=str(alias))
    assert r.finish()[:2] == (0, "bash\n")
    r = remote(dash, 'echo "${BASH_VERSION:+bash}"', env_shell=dash)
    assert r.finish()[:2] == (0, "\n")


ENV_VALUES = {"CLSTR_T_A": "it's $HOME \\ a\"b", "CLSTR_T_B": "\u00fcn\u00ee c\u00f6d\u00e9 * say hi!now !! !$ x!",
              "CLSTR_T_C": ""}


@pytest.mark.parametrize("name", SHELLS)
def test_env_reaches_the_job_under_every_login_shell(name):
    wrapper = ssh.Wrapper("t0k3n" * 4, tuple(f"{k}={v}" for k, v in ENV_VALUES.items()))
    shell = shell_path(name)
    line, _ = wrapper.line("printf '[%s]' \"$CLSTR_T_A\" \"$CLSTR_T_B\" \"$CLSTR_T_C\"; env | grep -c '^CLSTR_T_'")
    r = LoginShell(shell, line)
    try:
        out, _ = r.proc.communicate(timeout=20)
    finally:
        r.end()
    assert out.decode() == "".join(f"[{v}]" for v in ENV_VALUES.values()) + "3\n"


@pytest.mark.parametrize("name", SHELLS)
def test_workdir_is_the_jobs_and_a_missing_one_fails_the_job(name, tmp_path):
    shell = shell_path(name)
    place = tmp_path / "a dir's $x"
    place.mkdir()
    for workdir, want in ((place, (0, f"{place}\n")), (tmp_path / "none", (1, ""))):
        wrapper = ssh.Wrapper("t0k3n" * 4, workdir=str(workdir))
        r = LoginShell(shell, wrapper.line("pwd")[0])
        try:
            out, err = r.proc.communicate(timeout=20)
        finally:
            r.end()
        err, marks = wrapper.strip(err)
        assert (r.proc.returncode, out.decode()) == want and marks[1:] == [("e", want[0])]
        assert (b"none" in err) == (want[0] == 1)  # cd's own message, on the job's stderr


@pytest.mark.parametrize("name", POSIXISH)
def test_job_stopped_and_continued_is_waited_for_to_its_end(remote, name):
    """A job stopped by a signal (its own SIGSTOP here, continued by its helper once it is seen
    stopped) is not ended: the wrapper waits for it to exit, as sshd waits for plain ssh's."""
    job = ('(while :; do case "$(ps -o stat= -p $$)" in T*) break;; esac; done; kill -CONT $$) & '
           "kill -STOP $$; echo resumed")
    r = remote(shell_path(name), job)
    code, out, _ = r.finish()
    assert (code, out, r.marks) == (0, "resumed\n", [("s",), ("e", 0)])


@pytest.mark.parametrize("name", POSIXISH)
def test_job_signalling_its_parent_does_not_skip_the_end_mark(remote, name):
    r = remote(shell_path(name), "kill $PPID; kill -HUP $PPID; kill -INT $PPID; echo after; exit 5")
    code, out, _ = r.finish()
    assert (code, out, r.marks) == (5, "after\n", [("s",), ("e", 5)])


@pytest.mark.parametrize("job", ["ps -o pgid=,sid= -p $$; echo $$", "kill 0; echo after", "sh -c 'kill -9 0'"])
def test_universal_route_where_sh_is_bash(remote, tmp_path, job):
    """Where `sh` is bash (as on Red Hat's systems), a login shell clstr does not run the wrapper
    with (ksh here) hands it to that sh, which starts the job itself in a group of its own."""
    ksh = shell_path("ksh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to(shell_path("bash"))
    r = remote(ksh, job, path=f"{bin_dir}:{os.environ['PATH']}")
    code, out, err = r.finish()
    assert r.marks == [("s",), ("e", code)]
    if job.startswith("ps"):
        pgid, sid, pid = out.split()
        # a group of its own in the login's session: bash's job control, not setsid, made it
        assert code == 0 and pgid == pid and int(sid) == r.proc.pid
    else:
        assert (code, out, err) == plain(ksh, job)
