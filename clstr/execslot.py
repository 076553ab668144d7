"""Slots whose worker is their ssh (issue 24): where a slot gets one job and has nothing to keep
between jobs (an --on-each-node run), the supervisor starts the job's ssh itself (posix_spawn, in
a session of its own) and reads its pipes in its own event loop. No Python process is forked for
the slot: a node costs what its ssh costs.

What a Python worker does for such a job is done here the same way, with the same pure parts:
the wrapper's line (ssh.Wrapper), the marks and output (reading.Reading), the clocks
(deadlines.Deadlines: --timeout, --idle-timeout, a straggler's limit, the start bound, the
drain), the judging of how it ended (judging.Judge), the split of its time (runtime, connect),
and a ProxyJump lookup (``ssh -G``) where the scheduler asks for one or a handshake was refused.
The supervisor sees the same events (Connected, Output, Notice, Finished, Deferred) as from a
worker, in the same order. Nothing here blocks: a process is waited for through its pidfd, a
process group ended with TERM, then KILL once its grace has passed.
"""
import dataclasses
import os
import selectors
import signal
import time

from . import controldir, reaper, ssh, transports
from .board import CONNECTING, IDLE, RUNNING
from .clocks import Clocked
from .deadlines import Deadlines, start_bound
from .events import REPLACED, Connected, Deferred, Finished, Notice
from .judging import Judge, after_asking, asks_jump_host, timed
from .phases import ASIDES, Phase, master_opened, overdue, replaced
from .proc import KILL_GRACE, PIPE, Child, read_now
from .reading import Marked, Reading
from .result import Ending
from .master import LOCK_POLL
from .worker import CONFIG_WAIT, DRAIN_GRACE, READ_SIZE

_UNKNOWN = object()


def eligible(opt, wrapper, loop):
    """Whether the run's slots may be their ssh: one job a slot (--on-each-node), the remote
    wrapper's marks, no session loop or files (each needs a worker's state), no shared connection
    but a persisted one (--persist: its master is found or opened as a phase of the attempt), no
    --sudo (a node that asks for sudo's password is told it again by its worker), and not turned
    off (CLSTR_SLOT_WORKERS=python, for tests of both kinds)."""
    return (opt.one_job_slots and wrapper is not None and loop is None and opt.files is None and opt.ssh.sudo is None
            and (not opt.multiplex or opt.persist is not None) and os.environ.get("CLSTR_SLOT_WORKERS") != "python")


class ExecSlots(Clocked):
    """The running exec attempts of a run, at most one a slot.

    ``emit(idx, event)``: hands an event to the supervisor as if the slot's worker had sent it;
    ``sel``: the supervisor's selector; ``board``: the slots' shared board.
    """

    def __init__(self, opt, env, sel, board, emit, stopping=lambda: False):
        super().__init__(emit)
        self.cfg = opt.ssh
        self.wrapper, _ = ssh.marks_of(opt.ssh)
        self.env = env
        self.sel = sel
        self.board = board
        self.timeout = opt.timeout
        self.idle_timeout = opt.idle_timeout
        self.persist = opt.persist
        self.running = {}  # slot -> its ExecAttempt
        self.jump = {}  # node -> its ProxyJump host ("" for none), once looked up
        self.stopping = stopping  # whether the run starts no job any more (a signal, --halt)
        self.paused = False  # the reader of our output is behind: ssh's pipes are not read meanwhile

    def pause(self, pause):
        """Stop (or resume) reading every running ssh, as the pool stops reading its workers: their
        pipes fill and they wait, instead of their output piling up here."""
        if pause == self.paused:
            return
        self.paused = pause
        for a in self.running.values():
            for stream, fd in a.fds.items():
                if pause:
                    self.sel.unregister(fd)
                else:
                    self.sel.register(fd, selectors.EVENT_READ, lambda a=a, stream=stream: a.readable(stream))

    def busy(self, idx):
        return idx in self.running

    def start(self, idx, node, job, control_path=None):
        """Start slot ``idx``'s attempt of ``job`` on ``node`` (over the persisted master at
        ``control_path``, if given); OSError if no process or descriptor is left."""
        a = ExecAttempt(self, idx, node, job, control_path)
        self.running[idx] = a
        self.starting = True
        try:
            if control_path is not None and job.connect and not (job.lookup and node not in self.jump):
                a.master()
            elif job.lookup and node not in self.jump:
                a.lookup_first()
            elif job.lookup and self.jump[node]:
                self.done(a, Deferred(idx, job.seq, self.jump[node]))
            else:
                a.run()
        except OSError:
            a.close()
            self.running.pop(idx, None)
            raise
        finally:
            self.starting = False

    def limit(self, idx, seconds):
        """A straggler's limit for the slot's running attempt."""
        a = self.running.get(idx)
        if a is not None and a.d is not None:
            a.d.limit(seconds)
            self.plan(a)

    def done(self, a, event):
        if isinstance(event, Finished) and event.ending in (Ending.NEVER_RAN, Ending.LOST) and event.said is None:
            event = dataclasses.replace(event, said=a.judge.words(a.p))  # ssh's own words, as pdsh shows them
        a.finished = True
        self.running.pop(a.idx, None)
        self.board.pid[a.idx] = 0
        self.board.state[a.idx] = IDLE
        self.emit(a.idx, event)

    def shutdown(self):
        """The run ends: whatever still runs is ended (its group killed) and its descriptors closed."""
        for a in list(self.running.values()):
            a.kill(signal.SIGKILL)
            a.close()
            a.reap(block=True)
        self.running.clear()


class ExecAttempt:
    """One attempt whose worker is its ssh: its phases are an optional ``ssh -G`` lookup, the job."""

    def __init__(self, slots, idx, node, job, control_path=None):
        self.slots = slots
        self.control_path = control_path
        self.reach = transports.of(slots.cfg, node)  # how the node is reached: every argv to it
        self.judge = Judge(True, control_path, self.reach)
        self.reused = None  # --persist: whether its master was found persisted
        self.idx = idx
        self.node = node
        self.job = job
        self.start = time.time()
        self.t0 = time.monotonic()
        self.child = None
        self.fds = {}  # stream -> fd, while open
        self.feed = b""  # what is left of a job too long for ssh's command line, going down its stdin
        self.feeding = False  # its stdin is watched for room
        self.p = Marked()
        self.reading = None
        self.d = None
        self.kill_at = None
        self.planned = None
        self.finished = False
        self.pidfd = None
        self.code = None
        self.phase = None  # a phases.Phase
        self.config = b""
        self.lookup_by = None
        self.after = None  # the Finished that waits for a lookup after a refused handshake
        self.late_master = False
        self.unanswered = False  # the node was asked about a job's wrapper and ran out of time
        self.lock = None  # --persist: the node's controldir.MasterLock, while its master is opened
        self.locked_out = False  # another run holds it: looked at again every LOCK_POLL seconds

    # ---- phases --------------------------------------------------------
    def master(self):
        """--persist: find the node's persisted master on its socket, or open one (ssh -f returns
        once it is up: waited for through its pidfd, within the start bound)."""
        s = self.slots
        self.phase = Phase.MASTER
        if self.lock is None:  # one run at a time opens a node's persisted connection
            self.lock = controldir.MasterLock(self.control_path)
            self.lookup_by = time.monotonic() + start_bound(s.cfg.connect_timeout)
        self.locked_out = not self.lock.take()
        if self.locked_out:
            s.plan(self)
            return
        self.reused = self.judge.master_alive()
        if self.reused:  # an earlier run's connection: no handshake
            self._unlock()
            s.emit(self.idx, Connected(self.idx, True))
            self.run()
            return
        try:
            os.unlink(self.control_path)  # a dead master's socket: ssh would not bind over it
        except OSError:
            pass
        # the master outlives the run, as asked: it does not carry the run's marker
        env = reaper.unmarked(s.env)
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(f"{self.control_path}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            self.child = Child(self.reach.master_argv(self.control_path, s.persist), env, null, null, err)
        finally:
            os.close(null)
            os.close(err)
        s.board.pid[self.idx] = self.child.pid
        s.board.state[self.idx] = CONNECTING
        self.lookup_by = time.monotonic() + start_bound(s.cfg.connect_timeout)
        self._ended()  # nothing to read: its exit is waited for
        s.plan(self)

    def _unlock(self):
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def _locked_out(self, now):
        """Another run opens the node's persisted connection: look again, until the start bound."""
        if self.slots.stopping():
            self._unlock()
            self.slots.done(self, Finished(self.idx, self.job.seq, 255, self.start, 0.0, Ending.NEVER_RAN,
                                           "not started: the run is stopping"))
        elif now >= self.lookup_by:
            self._unlock()
            waited = now - self.t0
            self.slots.done(self, Finished(self.idx, self.job.seq, 255, self.start, 0.0, Ending.NEVER_RAN,
                                           controldir.LOCK_BUSY, connect=waited, began=waited))
        else:
            self.master()

    def lookup_first(self):
        """The scheduler asks whether the node is behind a jump host before the job starts."""
        self.phase = Phase.LOOKUP
        self.child = Child(self.reach.config_argv(), self.slots.env, PIPE, PIPE, PIPE)
        os.close(self.child.fds.pop(0))
        self.lookup_by = time.monotonic() + CONFIG_WAIT
        self._watch()
        self.slots.plan(self)

    def run(self):
        s = self.slots
        self.phase = Phase.JOB
        line, feed = s.wrapper.line(self.job.command)
        argv = self.reach.argv(line, self.control_path, True)
        self.child = Child(argv, s.env, PIPE, PIPE, PIPE)
        self.reading = Reading(self.idx, s.wrapper, lambda ev: s.emit(self.idx, ev), clock=time.monotonic)
        self.d = Deadlines(self.t0, s.timeout, s.idle_timeout, self.job.limit, start_bound(s.cfg.connect_timeout))
        s.board.pid[self.idx] = self.child.pid
        s.board.state[self.idx] = RUNNING
        self.feed = feed or b""
        self._watch()
        if self.feed:
            self._write()
        s.plan(self)

    def _watch(self):
        for stream in (1, 2):
            fd = self.child.fds[stream]
            os.set_blocking(fd, False)
            self.fds[stream] = fd
            if not self.slots.paused:
                self.slots.sel.register(fd, selectors.EVENT_READ, lambda stream=stream: self.readable(stream))
        if 0 in self.child.fds:
            os.set_blocking(self.child.fds[0], False)

    # ---- events --------------------------------------------------------
    def _write(self):
        """Hand ssh the job that was too long for its command line, as far as its pipe takes it now."""
        fd = self.child.fds.get(0)
        try:
            self.feed = self.feed[os.write(fd, self.feed):]
        except BlockingIOError:
            pass
        except OSError:
            self.feed = b""
        if self.feed and not self.feeding:  # the rest when the pipe takes more
            self.feeding = True
            self.slots.sel.register(fd, selectors.EVENT_WRITE, self._write)
        elif not self.feed and self.feeding:
            self.feeding = False
            self.slots.sel.unregister(fd)

    def readable(self, stream):
        fd = self.fds.get(stream)
        data = None if fd is None else read_now(fd, READ_SIZE)
        if data is None:
            return
        if self.phase in ASIDES:
            if data:
                self.config += data if stream == 1 else b""
            else:
                self._close(stream)
            if not self.fds:
                self._ended()
            return
        p, d = self.p, self.d
        if d.idle:
            d.output(time.monotonic())
            self.slots.plan(self)
        started = p.started
        if data:
            self.reading.feed(p, self.job.seq, stream, data)
        else:
            self._close(stream)
            self.reading.close(p, self.job.seq, stream)
        if p.started and not started:
            if p.started_at is not None:
                d.began(p.started_at)
            if self.control_path is None:
                self.slots.emit(self.idx, Connected(self.idx))  # this job's own connection is up
            self.slots.plan(self)
        if not self.fds:
            self._ended()

    def due(self):
        if self.finished:
            return None
        if self.locked_out:
            return min(self.lookup_by, time.monotonic() + LOCK_POLL)
        if self.phase is not Phase.JOB:
            return self.lookup_by if self.kill_at is None else self.kill_at
        due = self.d.next(self.p.started)
        if self.kill_at is not None:
            due = self.kill_at if due is None else min(due, self.kill_at)
        return due

    def clock(self, now):
        """A clock of the attempt is due."""
        if self.kill_at is not None and now >= self.kill_at:
            self.kill(signal.SIGKILL)
            self.kill_at = None
        if self.locked_out:
            self._locked_out(now)
            return
        if self.phase is Phase.MASTER:
            if now >= self.lookup_by and self.code is None and not self.late_master:
                self.late_master = True  # connected but stalled in the key exchange or the login
                self.kill(signal.SIGTERM)
                self.kill_at = now + KILL_GRACE
            return
        if self.phase in ASIDES:
            if now >= self.lookup_by and self.fds:
                self.unanswered = True
                self.kill(signal.SIGKILL)
                for stream in list(self.fds):
                    self._close(stream)
                self._ended()
            return
        d, p = self.d, self.p
        if d.drained(now):
            self.reading.give_up(p, self.job.seq)  # pipes given up on: what they held still counts
            for stream in list(self.fds):
                self._close(stream)
            self._ended()
            return
        if overdue(d, p, now, p.started):
            self.kill(signal.SIGTERM)
            self.kill_at = now + KILL_GRACE
            d.drain(now, DRAIN_GRACE)

    # ---- the end -------------------------------------------------------
    def _close(self, stream):
        fd = self.fds.pop(stream, None)
        if fd is not None and not self.slots.paused:
            try:
                self.slots.sel.unregister(fd)
            except (KeyError, ValueError):
                pass

    def _ended(self):
        """Both pipes are closed (or given up on): once ssh has exited, the attempt is judged."""
        if self.reap():
            self._judge()
            return
        try:
            self.pidfd = os.pidfd_open(self.child.pid)
        except (AttributeError, OSError):
            self.pidfd = None
        if self.pidfd is not None:
            self.slots.sel.register(self.pidfd, selectors.EVENT_READ, self._exited)
        else:
            self.reap(block=True)
            self._judge()

    def _exited(self):
        self.slots.sel.unregister(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = None
        self.reap(block=True)
        self._judge()

    def reap(self, block=False):
        """Whether ssh has exited (its status taken)."""
        if self.code is not None:
            return True
        if self.child is None:
            return True
        if not block and self.child.wait(0) is None:
            return False
        self.code = self.child.wait()
        return True

    def kill(self, sig):
        if self.child is not None and self.code is None:
            try:
                os.killpg(self.child.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self):
        self._unlock()
        for stream in list(self.fds):
            self._close(stream)
        if self.pidfd is not None:
            try:
                self.slots.sel.unregister(self.pidfd)
            except (KeyError, ValueError):
                pass
            os.close(self.pidfd)
            self.pidfd = None
        if self.feeding:
            try:
                self.slots.sel.unregister(self.child.fds[0])
            except (KeyError, ValueError):
                pass
            self.feeding = False
        if self.child is not None:
            self.child.close()

    def _judge(self):
        self.close()
        s, job = self.slots, self.job
        if self.phase is Phase.MASTER:
            s.board.pid[self.idx] = 0
            bound = None
            if self.code == 0 and not self.late_master:
                bound = self.judge.master_alive()
                if not bound:
                    controldir.end_unbound(self.control_path)  # up, but with no socket: ended
            self._unlock()
            ok, reason = master_opened(self.judge, self.code, self.late_master, bound)
            if ok:
                s.emit(self.idx, Connected(self.idx, False))
                self.child, self.code, self.fds, self.kill_at = None, None, {}, None
                if s.stopping():
                    s.done(self, Finished(self.idx, job.seq, 255, self.start, 0.0, Ending.NEVER_RAN,
                                           "not started: the run is stopping"))
                else:
                    self.run()
                return
            waited = time.monotonic() - self.t0
            s.done(self, Finished(self.idx, job.seq, 255, self.start, 0.0, Ending.NEVER_RAN, reason,
                                   connect=waited, began=waited))
            return
        if self.phase is Phase.ASK:
            s.done(self, after_asking(self.after, self.config, None if self.unanswered else self.code,
                                          self.judge.silent_is_kept))
            return
        if self.phase is Phase.LOOKUP:
            host = ssh.jump_host(self.config.decode("utf-8", "replace")) or ""
            s.jump[self.node] = host
            if self.after is not None:  # the lookup after a refused handshake: say it with the end
                s.done(self, dataclasses.replace(self.after, jump_host=host))
            elif host:
                s.done(self, Deferred(self.idx, job.seq, host))
            elif s.stopping():  # the run stopped while it looked: the job is not started
                s.done(self, Finished(self.idx, job.seq, 255, self.start, 0.0, Ending.NEVER_RAN,
                                       "not started: the run is stopping"))
            else:
                self.child, self.code, self.fds = None, None, {}
                self.run()
            return
        exit, ending, reason = self.judge.verdict(self.code, self.p)
        finished = timed(Finished(self.idx, job.seq, exit, self.start, time.monotonic() - self.t0, ending, reason),
                         self.p, self.t0)
        if replaced(job, self.reused, self.judge, said=bool(self.p.tail)):
            # the persisted master was dead (its node restarted) and died when asked for the job's
            # session: ssh went on over a connection of the job's own, and said so before the job
            # began (a master asked after every job costs a connect it must answer)
            s.emit(self.idx, Notice(self.idx, REPLACED, replaced=True))
        if self.judge.asks_node(finished, self.p):
            self._ask_after(finished)
            return
        if asks_jump_host(job, finished):
            host = s.jump.get(self.node, _UNKNOWN)
            if host is _UNKNOWN:
                self._look_up_after(finished)
                return
            finished = dataclasses.replace(finished, jump_host=host)
        s.done(self, finished)

    def _ask_after(self, finished):
        """A job that ended with no end mark and no word of ssh's: its node says whether its wrapper
        lives on (the connection was lost) or is gone (the job killed it), then the end is said."""
        argv = self.reach.argv(ssh.alive_line(self.p.shell), None, cleanup=False)
        self._then(finished, Phase.ASK, argv, start_bound(self.slots.cfg.connect_timeout), finished)

    def _look_up_after(self, finished):
        """A refused handshake may be the jump host's: look the node's up, then say it with the end."""
        self._then(finished, Phase.LOOKUP, self.reach.config_argv(), CONFIG_WAIT,
                   dataclasses.replace(finished, jump_host=""))

    def _then(self, finished, phase, argv, wait, unstarted):
        """One more short ssh (``phase``: its stdout read for at most ``wait`` s) before ``finished``
        is said; ``unstarted`` is said instead if that ssh cannot start."""
        s = self.slots
        self.after = finished
        try:
            self.child = Child(argv, s.env, PIPE, PIPE, PIPE)
        except OSError:
            s.done(self, unstarted)
            return
        os.close(self.child.fds.pop(0))
        self.code, self.config = None, b""
        self.lookup_by = time.monotonic() + wait
        self.phase = phase
        self._watch()
        s.plan(self)