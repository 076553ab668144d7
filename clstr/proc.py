"""Process primitives: a child started with posix_spawn in a session of its own, and ending a
process group (TERM, then KILL after a grace)."""
import errno
import functools
import os
import select
import shutil
import signal
import time

KILL_GRACE = 2.0  # TERM to KILL for a process group clstr ends


PIPE = -1
# signals a child starts with at their default disposition, whatever the spawner does with them
# (a worker ignores TERM, INT, HUP and USR1; Python ignores PIPE and XFSZ): a signal ignored on
# entry stays ignored in ssh, in the job loop (a shell may not trap it: its recall, USR1, would be
# lost) and in a job on the local machine (`yes | head -1` said "Broken pipe")
_DEFAULT = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGPIPE, signal.SIGXFSZ)


class Child:
    """A process started with posix_spawn in a session of its own.

    Lighter than subprocess.Popen on the per-job path: no Python-level fork
    machinery, no error pipe. ``stdin``/``stdout``/``stderr``: an fd to hand
    over, or PIPE; ``self.fds`` holds our ends of the pipes.
    """

    def __init__(self, argv, env, stdin, stdout, stderr):
        actions, theirs, self.fds = [], [], {}
        for target, spec in ((0, stdin), (1, stdout), (2, stderr)):
            if spec == PIPE:
                r, w = os.pipe()  # close-on-exec: only the dup2'd copies reach the child
                mine, child = (w, r) if target == 0 else (r, w)
                self.fds[target] = mine
                theirs.append(child)
                spec = child
            actions.append((os.POSIX_SPAWN_DUP2, spec, target))
        try:
            path = _program(argv[0], env.get("PATH"))
            # SIGTERM at its default, whatever the spawner does with it (a worker ignores it): a
            # signal ignored here would be ignored by the ssh too (ssh keeps an ignored TERM ignored)
            if path is None:  # not found: posix_spawnp says so, as the OSError of a missing program
                self.pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True, setsigdef=_DEFAULT)
            else:
                self.pid = os.posix_spawn(path, argv, env, file_actions=actions, setsid=True, setsigdef=_DEFAULT)
        except OSError:
            for fd in list(self.fds.values()):
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        self.returncode = None

    def wait(self, timeout=None):
        """The exit status (negative: killed by that signal), or None if ``timeout`` passed first."""
        if self.returncode is None:
            if timeout is not None and not _exited_within(self.pid, timeout):
                return None
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def close(self):
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = {}


@functools.lru_cache(maxsize=8)
def _program(name, search):
    """The path of program ``name`` on the PATH ``search``, looked up once: a spawn by name tries
    each directory of PATH before the one that has it (nine execve calls a spawn here)."""
    return shutil.which(name, path=search)


def _exited_within(pid, timeout):
    """Whether child ``pid`` exits within ``timeout`` seconds (it is not reaped)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            return bool(select.select([fd], [], [], timeout)[0])
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout  # no pidfd (old kernel): look now and then
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def read_now(fd, size):
    """What the non-blocking ``fd`` holds now: bytes; b"" at its end (or an error: its writer is
    gone); None if nothing yet."""
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def end_group(pid, grace=KILL_GRACE, child=None):
    """TERM the process group ``pid`` leads, then KILL it after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    if child is not None:
        child.wait(grace)  # ssh is gone now or soon; anything it started (ProxyCommand) goes too
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def catch_signals(wake, heard, signals=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)):
    """Hear ``signals``: each is handed to ``heard(signum)`` and wakes a loop that waits on the
    socket ``wake`` (its other end). Returns what to restore, or None off the main thread (whoever
    runs us there handles signals)."""
    try:
        old_fd = signal.set_wakeup_fd(wake.fileno(), warn_on_full_buffer=False)
    except ValueError:
        return None
    old = {"fd": old_fd}
    for sig in signals:
        old[sig] = signal.signal(sig, lambda signum, frame: heard(signum))
    return old


def restore_signals(old):
    """Put back what ``catch_signals`` replaced."""
    if old is None:
        return
    signal.set_wakeup_fd(old.pop("fd"))
    for sig, handler in old.items():
        signal.signal(sig, handler)


def drain(sock):
    """Read a non-blocking socket empty (a wake-up socket: what it holds says nothing more)."""
    try:
        while sock.recv(4096):
            pass
    except BlockingIOError:
        pass


def spawn_error(e):
    """An OSError of starting a program, its errno named: "Argument list too long (E2BIG)"."""
    name = errno.errorcode.get(e.errno)
    return f"{e.strerror or e}" + (f" ({name})" if name else "")
