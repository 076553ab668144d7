"""Fixtures: a real OpenSSH testbed on loopback, and a helper to run clstr against it."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from sshnodes import Testbed  # noqa: E402


@pytest.fixture(scope="session")
def testbed(tmp_path_factory):
    """Eight good nodes n1..n8 plus refused, hung and badauth, for the whole session."""
    with Testbed(tmp_path_factory.mktemp("sshd"), count=8) as tb:
        yield tb


class Clstr:
    """Runs the clstr command line against the testbed."""

    def __init__(self, testbed, cwd):
        self.tb = testbed
        self.cwd = cwd

    def argv(self, *args, ssh=True):
        base = [sys.executable, "-m", "clstr"]
        if ssh:
            base += ["--ssh", self.tb.ssh, "--connect-timeout", "3"]
        return base + list(args)

    def env(self, extra=None):
        env = dict(os.environ)
        env.pop("CLSTR_SSH", None)
        env.pop("CLSTR_PROFILES", None)
        env["XDG_CONFIG_HOME"] = str(self.cwd / "xdg-empty")
        env.update(extra or {})
        return env

    def __call__(self, *args, input=None, env=None, ssh=True, timeout=90):
        return subprocess.run(self.argv(*args, ssh=ssh), input=input, capture_output=True, text=True,
                              cwd=self.cwd, env=self.env(env), timeout=timeout)

    def popen(self, *args, env=None, **kw):
        return subprocess.Popen(self.argv(*args), cwd=self.cwd, env=self.env(env), **kw)


@pytest.fixture
def clstr(testbed, tmp_path):
    return Clstr(testbed, tmp_path)


def lines(text):
    """The lines of an output as a sorted list (jobs finish in any order)."""
    return sorted(text.splitlines())


def read_until(stream, wanted):
    """Read lines from a pipe until every wanted line was seen; return all lines read."""
    seen = []
    wanted = set(wanted)
    while wanted:
        line = stream.readline()
        if not line:
            raise AssertionError(f"output ended before {sorted(wanted)}; got {seen}")
        line = line.rstrip("\n")
        seen.append(line)
        wanted.discard(line)
    return seen


def signal_when(proc, wanted, *signals, timeout=30):
    """Once ``proc`` printed every ``wanted`` line, send it ``signals``; its (stdout, stderr) when it
    ended. It is killed whatever happens, so that a failing test leaves nothing behind."""
    try:
        read_until(proc.stdout, wanted)
        for sig in signals:
            proc.send_signal(sig)
        return proc.communicate(timeout=timeout)
    finally:
        proc.kill()


def processes_with(marker):
    """This machine's processes with ``marker`` (a string the test put in their command line)."""
    import psutil
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in word for word in (p.info["cmdline"] or [])):
                found.append(p)
        except psutil.Error:
            pass
    return found


def wait_for(predicate, deadline=30.0):
    """Poll ``predicate`` until it holds, for at most ``deadline`` seconds; returns whether it did.

    For conditions no event announces (a file's rows, a process's state): a bounded poll of the
    condition itself, never a sleep standing in for it.
    """
    import time
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def release(gate, proc, text="go\n"):
    """Open a job's fifo gate so that it can go on, then wait for clstr: (stdout, stderr)."""
    with open(gate, "w") as g:
        g.write(text)
    return proc.communicate(timeout=30)
