"""The remote job loop (clstr/remote/loop.sh), run by real local login shells as sshd would run it.

The login shell gets the loop's start line (``$SHELL -c LINE``) in a session of its own,
stdin a pipe the test writes frames to, as the worker does down its ssh session. No ssh
here: what each shell makes of the line and of the jobs is the point (sh, bash, dash, zsh,
ksh, csh, tcsh, fish; a shell this machine lacks is reported as skipped).
"""
import os
import re

import psutil
import pytest

from clstr import ssh
from test_wrapper import POSIXISH, LoginShell, living, shell_path

SHELLS = ["sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish"]
LOOP = ssh.Loop("l00pt0k3n" * 2)


class Session(LoginShell):
    """A login shell running the job loop; ``send`` frames jobs down its stdin."""

    def __init__(self, shell):
        super().__init__(shell, LOOP.start_line())

    def send(self, *jobs, quit=True):
        for job in jobs:
            os.write(self.stdin, LOOP.frame(job))
        if quit:
            os.write(self.stdin, LOOP.QUIT)

    def readline(self):
        """The next line of the loop's stdout that is not a mark."""
        while True:
            kept, _ = LOOP.strip(self.proc.stdout.readline())
            if kept:
                return kept

    def results(self):
        """[(status, stdout, stderr)] a job, from the marks, once the loop ended; and its exit status."""
        out, err = self.proc.communicate(timeout=30)
        return split(out, err), self.proc.returncode


def split(out, err):
    """The loop's two streams cut into jobs by its marks: [(status, stdout, stderr)]."""
    outs, errs, statuses = [[]], [[]], []
    for line in out.splitlines(keepends=True):
        kept, marks = LOOP.strip(line)
        if kept:
            outs[-1].append(kept)
        if marks == [("o",)]:
            outs.append([])
    ready = False
    for line in err.splitlines(keepends=True):
        kept, marks = LOOP.strip(line)
        if kept and ready:
            errs[-1].append(kept)
        for m in marks:
            if m[0] == "r":
                ready = True
            elif m[0] == "e":
                statuses.append(m[1])
                errs.append([])
    text = lambda chunks: b"".join(chunks).decode("utf-8", "replace")  # noqa: E731
    return [(s, text(o), text(e)) for s, o, e in zip(statuses, outs, errs)]


@pytest.fixture
def loop():
    started = []

    def start(name):
        started.append(Session(shell_path(name)))
        return started[-1]
    yield start
    for s in started:
        s.end()


@pytest.mark.parametrize("name", SHELLS)
def test_each_job_in_a_fresh_login_shell_with_its_status(loop, name):
    s = loop(name)
    s.send("echo one", "exit 3", "echo two")
    results, code = s.results()
    assert code == 0
    assert results == [(0, "one\n", ""), (3, "", ""), (0, "two\n", "")]


@pytest.mark.parametrize("name", POSIXISH + ["sh"])
def test_nothing_leaks_from_one_job_to_the_next(loop, name):
    s = loop(name)
    s.send("cd /; export X=1; Y=2; f() { :; }; set -e; trap 'echo trapped' EXIT; exit 4",
           'echo "[$X][$Y]"; pwd; type f >/dev/null 2>&1 || echo no-f',
           "exec sh -c 'echo execd; exit 6'", "echo after-exec")
    results, _ = s.results()
    assert results == [(4, "trapped\n", ""), (0, "[][]\n" + os.getcwd() + "\nno-f\n", ""),
                       (6, "execd\n", ""), (0, "after-exec\n", "")]


@pytest.mark.parametrize("name", POSIXISH)
def test_framing_survives_what_jobs_hold(loop, name):
    """Lines that look like frames, no final newline, binary bytes, long lines, jobs reading stdin."""
    s = loop(name)
    s.send("cat <<'EOF'\nq\n2\n\n  spaced \\ back\\\\slash  \nEOF",
           "printf 'no newline'; printf 'err' >&2",
           r"printf '\000\001\377\n'",
           "head -c 300000 /dev/zero | tr '\\0' x",
           "cat; read x; echo \"read [$x]\"",
           "echo last")
    results, code = s.results()
    assert code == 0
    assert results[0] == (0, "q\n2\n\n  spaced \\ back\\\\slash  \n", "")
    assert results[1] == (0, "no newline\n", "err\n")  # a line the job left unended ends at its end
    assert results[2] == (0, "\x00\x01\ufffd\n", "")
    assert results[3] == (0, "x" * 300000 + "\n", "")
    assert results[4] == (0, "read []\n", "")  # stdin is /dev/null, not the job stream
    assert results[5] == (0, "last\n", "")


# the loop itself runs under sh whatever the login shell: one shell of each family is enough here
@pytest.mark.parametrize("name", ["sh", "zsh", "tcsh", "fish"])
def test_stdin_closing_ends_the_running_job(loop, name):
    s = loop(name)
    s.send("echo started; sleep 60; echo not ended", quit=False)
    assert s.readline() == b"started\n"
    s.close_stdin()  # what a killed ssh or a dropped connection does
    out, err = s.proc.communicate(timeout=30)
    assert b"not ended" not in out
    gone, alive = psutil.wait_procs(s.session(), timeout=10)
    assert not [p for p in alive if living(p)]  # a zombie waits for init, not for us


@pytest.mark.parametrize("name", POSIXISH)
def test_quit_leaves_background_processes_of_finished_jobs(loop, name):
    s = loop(name)
    s.send("sleep 60 >/dev/null 2>&1 & echo $!")
    results, code = s.results()
    assert code == 0
    bg = int(results[0][1])
    others = [p for p in s.session() if p.pid != bg]
    gone, alive = psutil.wait_procs(others, timeout=10)
    assert not alive
    assert psutil.pid_exists(bg) and psutil.Process(bg).status() != psutil.STATUS_ZOMBIE


def test_start_line_is_one_line_that_csh_can_quote():
    line = LOOP.start_line()
    assert "\n" not in line and "!" not in line
    assert line.startswith("exec sh -c '") and f"' clstr {LOOP.token} '" in line
    assert LOOP.frame("a\nb") == b"2\na\nb\n" and LOOP.frame("x") == b"1\nx\n"


@pytest.mark.parametrize("name", ["sh", "bash"])
def test_a_job_signalling_the_loop_does_not_end_it(loop, name):
    """`kill $PPID` from a job reaches the loop's runner: it goes on, and its marks still come."""
    s = loop(name)
    s.send("kill $PPID; kill -HUP $PPID; kill -INT $PPID; echo after", "echo next")
    results, code = s.results()
    assert code == 0
    assert results == [(0, "after\n", ""), (0, "next\n", "")]


@pytest.mark.parametrize("name", ["loop.sh", "reader.sh", "watch.sh", "files.sh", "clean.sh"])
def test_each_remote_program_joined_into_one_line_is_valid_sh_with_no_comment(name):
    """Joined with spaces, a '#' at the start of a word would comment out the rest of the program."""
    import subprocess
    program = ssh.remote_program(name)
    assert "\n" not in program and not re.search(r"@[A-Z_]+@", program)  # every constant filled in
    assert not re.search(r"(^|[\s;|&(){}])#", program), program
    for sh in ("sh", "dash", "bash"):
        path = shell_path(sh)
        r = subprocess.run([path, "-n", "-c", program], capture_output=True, text=True, timeout=10)
        assert (r.returncode, r.stderr) == (0, ""), (sh, r.stderr)


@pytest.mark.parametrize("name", SHELLS)
def test_env_reaches_every_job_of_the_loop_under_every_login_shell(name):
    from test_wrapper import ENV_VALUES
    env_loop = ssh.Loop(LOOP.token, env=tuple(f"{k}={v}" for k, v in ENV_VALUES.items()))
    s = LoginShell(shell_path(name), env_loop.start_line())
    try:
        for job in ("printf '[%s]' \"$CLSTR_T_A\" \"$CLSTR_T_B\" \"$CLSTR_T_C\"", "echo \"[$CLSTR_T_A]\""):
            os.write(s.stdin, env_loop.frame(job))
        os.write(s.stdin, env_loop.QUIT)
        out, err = s.proc.communicate(timeout=30)
    finally:
        s.end()
    results = split(out, err)
    assert [r[1] for r in results] == ["".join(f"[{v}]" for v in ENV_VALUES.values()) + "\n",
                                       f"[{ENV_VALUES['CLSTR_T_A']}]\n"]
