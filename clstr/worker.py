"""The worker body: one process per node slot, running one ssh at a time.

It takes ``events.Job`` messages from its pipe, runs the job's ssh in a
session of its own, streams complete output lines back and reports the exit.
It keeps no state between jobs beyond the slot it serves.
"""
import os
import select
import selectors
import signal
import time

from . import ssh
from .events import Connected, Finished, Output
from .status import IDLE, CONNECTING, RUNNING

READ_SIZE = 65536
STDERR_TAIL = 4096
KILL_GRACE = 2.0
# Output waits at most this long, or until this much is held, to travel with other events:
# a short job's lines then reach the supervisor together with its end, in one message.
HOLD_SECONDS = 0.05
HOLD_BYTES = 65536


PIPE = -1


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
            self.pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True)
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


class SupervisorGone(Exception):
    """The supervisor's end of the pipe closed: end the job and exit."""


class SlotWorker:
    """Runs the jobs of one slot: ``serve`` loops until told to stop."""

    def __init__(self, slot, node, conn, cfg, board, env, control_path=None, timeout=None):
        self.slot = slot
        self.node = node
        self.conn = conn
        self.base = ssh.base_argv(cfg)
        self.cleanup = cfg.remote_cleanup
        self.connect_timeout = cfg.connect_timeout
        self.board = board
        self.env = env
        self.control_path = control_path
        self.timeout = timeout
        self.outbox = []  # events held to travel in one message
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.held = 0
        self.hold_until = None

    def serve(self, first=None):
        """Run ``first``, then each job that comes down the pipe, until told to stop."""
        job = first
        while True:
            if job is None:
                try:
                    job = self.conn.recv()
                except (EOFError, OSError):
                    return  # the supervisor is gone
                if job is None:
                    return
            finished = self.run(job)
            self.outbox.append(finished)
            self._flush()
            job = None

    def _emit(self, ev):
        self.outbox.append(ev)
        self.held += len(ev.data)
        if self.hold_until is None:
            self.hold_until = time.monotonic() + HOLD_SECONDS
        if self.held >= HOLD_BYTES:
            self._flush()

    def _flush(self):
        if self.outbox:
            self.conn.send(self.outbox)
        self.outbox, self.held, self.hold_until = [], 0, None

    def open_master(self):
        """Open the node's ControlMaster; returns (ok, classified reason or None)."""
        self.board.state[self.slot] = CONNECTING
        errfile = f"{self.control_path}.err"
        argv = ssh.master_argv(self.base, self.node, self.control_path)
        with open(errfile, "wb") as err:
            # the backgrounded master keeps stderr open: a file, not a pipe we would wait on
            child = Child(argv, self.env, self.devnull, self.devnull, err.fileno())
        self.board.pid[self.slot] = child.pid
        code = child.wait(self.connect_timeout * 3 + 5)
        if code is None:
            end_group(child.pid, child=child)
            code = child.wait()
        self.board.pid[self.slot] = 0
        if code == 0:
            return True, None
        return False, self._master_error() or f"ssh exit {code}"

    def _master_error(self):
        """Why the node's master failed or died, from the log it writes (None if unknown)."""
        try:
            with open(f"{self.control_path}.err", "rb") as f:
                reason, _ = ssh.classify(f.read()[-STDERR_TAIL:])
        except OSError:
            return None
        return reason

    def run(self, job):
        """Run one attempt; returns its Finished event (output was sent on the way)."""
        start = time.time()
        t0 = time.monotonic()
        if job.connect and self.control_path:
            ok, reason = self.open_master()
            if not ok:
                self.board.state[self.slot] = IDLE
                return Finished(self.slot, job.seq, 255, start, time.monotonic() - t0,
                                ssh_error=reason, never_ran=True)
            self.conn.send(Connected(self.slot))
        argv = ssh.job_argv(self.base, self.node, job.command, self.control_path, self.cleanup)
        # with remote cleanup, ssh's stdin is a pipe we hold open and never write: its closing
        # tells the node to end the job
        child = Child(argv, self.env, PIPE if self.cleanup else self.devnull, PIPE, PIPE)
        self.board.pid[self.slot] = child.pid
        self.board.state[self.slot] = RUNNING
        try:
            timed_out, tail = self._pump(child, job.seq, t0)
            code = child.wait()
        finally:
            child.close()
        self.board.pid[self.slot] = 0
        self.board.state[self.slot] = IDLE
        reason, never_ran = (None, False)
        if code != 0 and not timed_out:
            reason, never_ran = ssh.classify(tail)
            if code == 255 and reason is None and self.control_path and not os.path.exists(self.control_path):
                # a mux client says nothing when its master dies: the master's log says why
                reason = self._master_error() or "connection lost"
        return Finished(self.slot, job.seq, code, start, time.monotonic() - t0, timed_out, reason, never_ran)

    def _pump(self, child, seq, t0):
        """Forward complete lines of stdout and stderr until both close; enforce the timeout."""
        sel = selectors.DefaultSelector()
        partial = {}
        for stream in (1, 2):
            fd = child.fds.pop(stream)
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, stream)
            partial[stream] = []  # chunks of a line not yet ended
        # nothing comes down the pipe while a job runs, unless the supervisor is gone
        sel.register(self.conn, selectors.EVENT_READ, 0)
        tail = b""
        timed_out = False
        deadline = t0 + self.timeout if self.timeout else None
        while len(sel.get_map()) > 1:
            due = [t for t in (deadline, self.hold_until) if t is not None]
            wait = max(0.0, min(due) - time.monotonic()) if due else None
            ready = sel.select(wait)
            if self.hold_until is not None and time.monotonic() >= self.hold_until:
                self._flush()
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                end_group(child.pid, child=child)
                deadline = None  # the pipes close now that the group is gone
                continue
            for key, _ in ready:
                stream = key.data
                if stream == 0:
                    end_group(child.pid, child=child)
                    raise SupervisorGone()
                try:
                    data = os.read(key.fd, READ_SIZE)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    rest = b"".join(partial.pop(stream))
                    if rest:
                        self._emit(Output(self.slot, seq, stream, rest + b"\n"))
                    continue
                if stream == 2:
                    tail = (tail + data)[-STDERR_TAIL:]
                cut = data.rfind(b"\n") + 1
                if not cut:
                    partial[stream].append(data)  # joined once its line ends: no quadratic copying
                    continue
                lines = b"".join(partial[stream]) + data[:cut]
                partial[stream] = [data[cut:]] if cut < len(data) else []
                # only whole lines travel, so lines of two jobs never mix
                self._emit(Output(self.slot, seq, stream, lines))
        sel.close()
        return timed_out, tail


def worker_main(slot, node, conn, cfg, board, env, control_path, timeout, close, first):
    """Entry point of a forked worker process; ``first`` is its first job, given at the fork."""
    # the supervisor owns Ctrl-C: it ends our ssh itself and tells us to stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    for c in close:
        try:
            c.close()
        except OSError:
            pass
    try:
        SlotWorker(slot, node, conn, cfg, board, env, control_path, timeout).serve(first)
    except (BrokenPipeError, EOFError, SupervisorGone):
        pass  # the supervisor went away: nobody would read what we have
