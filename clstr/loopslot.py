"""Slots whose job loop the supervisor reads itself: this machine's (``:``) and nodes reached by
--connect's command (issue 35).

Where a slot's session is a process here with no connection to keep (transports.Local: the user's
$SHELL; transports.Command: ``docker exec -i NAME`` and the like) and the run sends jobs ahead
down the job loop (lookahead.py), a forked worker would only relay: read the session's marks,
tell the supervisor, send the next job on. Here no Python process is forked for the slot: the
supervisor starts the job loop (the same clstr/remote/loop.sh, by the node's transport, in a
session of its own), writes each job's frame down its stdin and reads its marks and output in
its own event loop. What a worker does for such a job is done with the same parts: the frames
(ssh.Loop), the reading (reading.Reading), the judging (judging.Judge, the transport's words for
its own failures) and the time split (judging.times); the supervisor hears the same events
(Connected, Output, Finished, Recalled), in the same order.

A held job goes down the session at once, after a line "@AHEAD@": the loop's runner starts it as
the job before it ends with status 0, or drops it (a failure, a recall: loop.sh). Which it was
is known at that end (after a recall, from the runner's next mark) and settled before the end is
told: the supervisor's take_back then says whether it started.

Nothing here blocks but the run's end: a session that ended is waited for through its pidfd, one
told to quit is killed once its grace has passed.
"""
import dataclasses
import os
import selectors
import signal
import time

from . import ssh, transports
from .board import CONNECTING, IDLE, RUNNING
from .clocks import Clocked
from .deadlines import start_bound
from .events import Connected, Finished, Recalled
from .judging import Judge, timed, times
from .proc import KILL_GRACE, PIPE, Child, read_now
from .reading import Marked, Reading
from .result import Ending
from .session import OUTCOME_WAIT
from .slots import NOT_MINE, NOT_STARTED, STARTED, Kind
from .worker import DRAIN_GRACE, PING_EVERY, READ_SIZE


KINDS = ("local", "command")  # the transports whose slots are read here (transports.py): no acks to pace them


def eligible(opt, loop, lookahead):
    """Whether the run's slots on this machine or reached by a command are read by the supervisor
    (the others are forked workers, as ever): its forked workers would hold jobs ahead
    (``lookahead``: supervisor.lookahead, a pipelined run whose jobs need nothing of the
    supervisor between them), no per-attempt limit is kept (--timeout, --idle-timeout: a worker's
    clocks), not --on-each-node (execslot.py), no -m (it bounds the forked workers alive), and
    not turned off (CLSTR_SLOT_WORKERS=python, for tests of both kinds)."""
    return (lookahead and loop is not None and not opt.one_job_slots and not opt.timeout and not opt.idle_timeout
            and opt.policy.max_running is None and os.environ.get("CLSTR_SLOT_WORKERS") != "python")


class LocalLoops(Clocked, Kind):
    """The job loops of a run's slots on this machine or reached by a command, one session a slot,
    kept from job to job.

    ``loop``: the run's ssh.Loop; ``sel``: the supervisor's selector; ``board``: the slot board;
    ``slots``: the scheduler's; ``emit(idx, event)``: hands an event to the supervisor as if the
    slot's worker had sent it; ``left_out(idx, job, what, error)``: a slot whose loop could not start.
    """

    def __init__(self, opt, loop, env, sel, board, slots, emit, left_out):
        super().__init__(emit)
        self.loop = loop
        self.cfg = opt.ssh
        self.reached = {}  # node -> (its transport, the Judge of its attempts)
        self.env = env
        self.sel = sel
        self.board = board
        self.slots = slots
        self.left_out = left_out
        self.start_within = start_bound(opt.ssh.connect_timeout)
        self.sessions = {}  # slot -> its Session, while it may run jobs
        self.quitting = set()  # sessions told to quit: reaped once they exit, killed once due
        self.started = {}  # slot -> the hold number of the last held job its loop started
        self.paused = False
        self.ending = False  # the run ends: a job's end is no longer told (as of any kind's)

    def reach(self, node):
        """(transport, Judge) of ``node`` if its slots are this kind's (this machine, or a node
        reached by --connect's command), else None."""
        if node not in self.reached:
            reach = transports.of(self.cfg, node)
            self.reached[node] = (reach, Judge(True, None, reach)) if reach.name in KINDS else None
        return self.reached[node]

    # ---- the contract (slots.py) ----------------------------------------
    def take(self, idx, job):
        if self.reach(self.slots[idx].node) is None:
            return NOT_MINE
        s = self.sessions.get(idx)
        self.starting = True
        try:
            if s is None:
                try:
                    s = self.sessions[idx] = Session(self, idx)
                except OSError as e:
                    self.left_out(idx, job, "its job loop could not be started", e)
                    return NOT_STARTED
            if job.connect:  # its transport has no connection to share: its group is up at once
                self.emit(idx, Connected(idx, False))
            s.run(job)
        finally:
            self.starting = False
        return STARTED

    def runs(self, idx):
        s = self.sessions.get(idx)
        return s is not None and s.job is not None

    def holds(self, idx):
        s = self.sessions.get(idx)
        return s is not None and s.may_hold()

    def hold(self, idx, job):
        s = self.sessions.get(idx)
        return s is not None and s.push(job)

    def take_back(self, idx, number, recall=False):
        if self.started.get(idx) == number:
            return False  # its loop started it
        s = self.sessions.get(idx)
        if s is None or s.pushed is None or s.pushed.hold != number:
            return True  # dropped, or never sent
        if recall:
            self.starting = True
            try:
                s.recall_wanted()
            finally:
                self.starting = False
        return False

    def release(self, idx):
        self._quit(idx)

    def ended(self, idx, keep):
        if not keep:
            self._quit(idx)

    def idle(self, is_idle):
        for idx in sorted(self.sessions):
            if is_idle(idx) and self.sessions[idx].job is None:
                self._quit(idx)

    def live_slots(self):
        return set(self.sessions)

    def pause(self, pause):
        """Stop (or resume) reading every session, as the pool stops reading its workers."""
        if pause != self.paused:
            self.paused = pause
            for s in list(self.sessions.values()) + list(self.quitting):
                s.watch(not pause)

    def overdue(self, idx, since):
        s = self.sessions.get(idx)
        if s is not None:
            s.kill(signal.SIGKILL)
            s.gave_up()

    def shutdown(self):
        """The run ends: every loop is told to quit, given its grace to go, then ended."""
        self.ending = True
        for idx in sorted(self.sessions):
            self._quit(idx)
        left = list(self.quitting)
        for s in left:
            s.close_stdin()
        # all at once: their grace, then TERM (a job that ignores the loop's end), then KILL
        for sig, grace in ((signal.SIGTERM, DRAIN_GRACE), (signal.SIGKILL, KILL_GRACE)):
            by = time.monotonic() + grace
            for s in left:
                if s.child.wait(max(0.0, by - time.monotonic())) is None:
                    s.kill(sig)
        for s in left:
            s.child.wait()
            s.finish_quitting()
        self.quitting.clear()

    def _quit(self, idx):
        s = self.sessions.pop(idx, None)
        if s is not None:
            self.quitting.add(s)
            self.board.pid[idx] = 0
            self.board.state[idx] = IDLE
            s.quit()

    def gone(self, s):
        """The session ended and was judged: the slot has none."""
        if self.sessions.get(s.idx) is s:
            del self.sessions[s.idx]
            self.board.pid[s.idx] = 0
            self.board.state[s.idx] = IDLE
        self.quitting.discard(s)


class Session:
    """The job loop of one slot: its transport's child here, in a session of its own, its stdin
    written (frames), its stdout and stderr read (the marks and the jobs' output)."""

    def __init__(self, kind, idx):
        self.kind = kind
        self.idx = idx
        self.reach, self.judge = kind.reach(kind.slots[idx].node)
        self.child = Child(self.reach.argv(kind.loop.start_line()), kind.env, PIPE, PIPE, PIPE)
        self.stdin = self.child.fds[0]
        self.fds = {1: self.child.fds[1], 2: self.child.fds[2]}  # streams not at EOF yet
        for fd in self.child.fds.values():
            os.set_blocking(fd, False)
        self.reading = Reading(idx, kind.loop, lambda ev: kind.emit(idx, ev), session=True, clock=time.monotonic)
        self.opening = Marked()  # what the loop wrote before its ready mark
        self.runner = None  # the loop's runner, from its ready mark
        self.ahead_ok = False  # its runner can be recalled: jobs may go ahead
        self.no_ahead = False  # a recall went down: nothing more goes ahead on this session
        self.job = None  # the events.Job it runs (its attempt: start, t0, its reading.Marked p)
        self.start = self.t0 = None
        self.p = Marked()
        self.pushed = None  # the held job sent ahead behind the running one
        self.recall = None  # None, "wanted" (once the job's start mark came) or "sent"
        self.waiting = None  # (Finished, give up at): a recall went down; the runner's next mark tells
        self.out = b""  # what stdin has not taken yet
        self.writing = False  # stdin is watched for room
        self.watched = False
        self.start_by = time.monotonic() + kind.start_within
        self.ping_at = None
        self.kill_at = None
        self.quit_at = None
        self.planned = None
        self.pidfd = None
        self.code = None
        self.finished = False
        kind.board.pid[idx] = self.child.pid
        kind.board.state[idx] = CONNECTING
        self.watch(not kind.paused)
        kind.plan(self)

    # ---- writing ---------------------------------------------------------
    def write(self, data):
        """Down stdin, in order: what the pipe takes now, the rest as it takes it."""
        if self.stdin is not None:
            self.out += data
            self._writable()

    def _writable(self):
        try:
            self.out = self.out[os.write(self.stdin, self.out):]
        except BlockingIOError:
            pass
        except OSError:  # the loop is gone: its end says why
            self.out = b""
        if bool(self.out) != self.writing:  # stdin watched for room while something waits
            self.writing = bool(self.out)
            if self.writing:
                self.kind.sel.register(self.stdin, selectors.EVENT_WRITE, self._writable)
            else:
                self.kind.sel.unregister(self.stdin)

    # ---- jobs ------------------------------------------------------------
    def run(self, job):
        """Start ``job`` (the supervisor gave it): its frame goes down once the loop is ready."""
        self.job, self.start, self.t0, self.p = job, time.time(), time.monotonic(), Marked()
        self.reading.resume(self.p, job.seq)  # what the loop wrote after the last job's end is this one's
        if self.runner is not None:
            self._send()

    def _send(self):
        """The running job's frame goes down the ready loop."""
        self.write(self.kind.loop.frame(self.job.command))
        self.kind.board.state[self.idx] = RUNNING
        self.ping_at = time.monotonic() + PING_EVERY
        self.kind.plan(self)

    def may_hold(self):
        return (self.job is not None and self.runner is not None and self.ahead_ok and not self.no_ahead
                and self.pushed is None and self.waiting is None and self.p.end is None and not self.finished)

    def push(self, job):
        """A held job, to run next: sent ahead down the session (False if it cannot go)."""
        if not self.may_hold() or job.after != self.job.seq:
            return False
        self.pushed = job
        self.write(self.kind.loop.ahead(job.command))
        return True

    def recall_wanted(self):
        if self.pushed is not None and self.recall is None:
            self.recall = "wanted"
            self.no_ahead = True  # a recall may come late: nothing more goes ahead here
            self._recall_read()

    def _recall_read(self):
        """A wanted recall goes down once the job's start mark came (not after its end); once the
        reader said it signalled the runner before that end, the job sent ahead will be dropped:
        its hold is the supervisor's to take back (loop.sh)."""
        p = self.p
        if self.recall == "wanted" and p.started and p.end is None:
            self.write(self.kind.loop.recall(self.runner))
            self.recall = "sent"
        if self.recall == "sent" and p.recalled and self.pushed is not None:
            self.pushed, self.recall = None, None
            self.kind.emit(self.idx, Recalled(self.idx))

    # ---- reading ---------------------------------------------------------
    def watch(self, on):
        if on == self.watched:
            return
        self.watched = on
        for stream, fd in self.fds.items():
            if on:
                self.kind.sel.register(fd, selectors.EVENT_READ, lambda stream=stream: self.readable(stream))
            else:
                self.kind.sel.unregister(fd)

    def readable(self, stream):
        fd = self.fds.get(stream)
        data = None if fd is None else read_now(fd, READ_SIZE)
        if data is None:
            return
        if not data:
            self._eof(stream)
            return
        if self.runner is None and self.quit_at is None:
            self.reading.feed(self.opening, None, stream, data)
            if self.opening.ready:
                self._ready()
            return
        self.reading.feed(self.p, self.job.seq if self.job else self.reading.last_seq, stream, data)
        if self.recall is not None:
            self._recall_read()
        if self.waiting is not None:
            self._outcome()  # (then on to what follows)
        else:
            self._advance()

    def _ready(self):
        self.runner, self.ahead_ok = self.opening.runner, bool(self.opening.ahead_ok)
        self.kind.emit(self.idx, Connected(self.idx))  # the slot's own session is up
        if self.job is not None and not self.finished:
            self._send()

    def _advance(self):
        """The running job's end marks came: it ended, and the job sent ahead behind it started or
        went back; the end is told. Again for that job, while what was read holds its end too."""
        while self.job is not None and self.waiting is None and not self.finished:
            p = self.p
            if p.loop_gone:  # the job killed the runner: the session goes
                self.kill(signal.SIGTERM)
                self.kill_at = time.monotonic() + KILL_GRACE
                self.kind.plan(self)
                self._close_streams()
                return
            if p.end is None or not p.out_end:
                return
            self.reading.last_seq = self.job.seq
            exit, ending, reason = self.judge.verdict(None, p, session=True)
            runtime, connect, began = times(p, self.t0, time.monotonic() - self.t0)
            finished = Finished(self.idx, self.job.seq, exit, self.start, runtime, ending, reason, connect=connect,
                                began=began)
            if self.pushed is not None and p.end == 0 and self.recall == "sent":
                self.waiting = (finished, time.monotonic() + OUTCOME_WAIT)
                self._outcome()
            else:
                self._settle(finished, self.pushed is not None and p.end == 0)

    def _outcome(self):
        """After a recall went down, the runner's next mark says whether the job sent ahead started."""
        found = self.reading.next_is((ssh.MARK_START, ssh.MARK_DROPPED))
        if found is None:
            self.kind.plan(self)
            return
        finished, self.waiting = self.waiting[0], None
        self._settle(finished, found == ssh.MARK_START)
        self._advance()

    def _settle(self, finished, started):
        """The running job ended (``finished``); the job sent ahead behind it ``started`` or not."""
        pushed, self.pushed, self.recall = self.pushed, None, None
        if started:
            self.kind.started[self.idx] = pushed.hold
            self.job = pushed
            self.start, self.t0, self.p = time.time(), time.monotonic(), Marked()
            self.ping_at = self.t0 + PING_EVERY
        else:
            self.job, self.ping_at = None, None
            self.kind.board.state[self.idx] = IDLE
        self.kind.emit(self.idx, finished)  # the supervisor settles the held job here (take_back)
        if started and not self.finished:
            self.reading.resume(self.p, self.job.seq)  # what was read after the end is the started job's
        self.kind.plan(self)

    def _eof(self, stream):
        self._drop(stream)
        self.reading.close(self.p if self.job else self.opening, self.job.seq if self.job else None, stream)
        if not self.fds:
            self._ended()

    def _close_streams(self):
        for stream in list(self.fds):
            self._drop(stream)
        self._ended()

    def _drop(self, stream):
        fd = self.fds.pop(stream)
        if self.watched:
            self.kind.sel.unregister(fd)
        os.close(fd)

    # ---- the end ---------------------------------------------------------
    def quit(self):
        """No further job: the loop is told to end, and given its grace to go."""
        if self.quit_at is not None:
            return
        self.write(self.kind.loop.QUIT)
        self.quit_at = time.monotonic() + DRAIN_GRACE
        self.kind.plan(self)

    def kill(self, sig):
        if self.code is None:
            try:
                os.killpg(self.child.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _ended(self):
        """Both streams are closed (or given up on): once the loop has exited, it is judged."""
        if self.job is not None:
            self.reading.give_up(self.p, self.job.seq)  # (an idle session's: its late output, when judged)
        if self.child.wait(0) is not None:
            self._judge()
            return
        try:
            self.pidfd = os.pidfd_open(self.child.pid)
        except (AttributeError, OSError):
            self.pidfd = None
        if self.pidfd is None:
            self.kill(signal.SIGKILL)
            self.child.wait()
            self._judge()
            return
        self.kind.sel.register(self.pidfd, selectors.EVENT_READ, self._exited)
        if self.kill_at is None:
            self.kill_at = time.monotonic() + KILL_GRACE  # its streams closed: it has nothing left to do
        self.kind.plan(self)

    def _exited(self):
        self.kind.sel.unregister(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = None
        self._judge()

    def _judge(self):
        """The loop has exited: the job it ran ends as what was read says (its end mark, or the
        session's end), and so does a job sent ahead that it started as it ended."""
        if self.finished:
            return
        self.finished = True
        self.code = self.child.wait()
        self._close()
        # whether the runner started the job sent ahead (its start mark), asked before what was read
        # after the last job's end goes to that job as its late output
        ahead = self.reading.next_is((ssh.MARK_START, ssh.MARK_DROPPED)) == ssh.MARK_START
        self.reading.leftover()
        job, p, pushed = self.job, self.p, self.pushed
        if self.kind.ending:
            pass  # (the run's end: no job runs; a job's end is no longer told)
        elif self.waiting is not None:
            finished = self.waiting[0]
            self.waiting = None
            self._report(finished, pushed, ahead)  # as its runner's next mark says
        elif job is not None and self.runner is None:
            # the loop ended before its ready mark: the job never ran (a $SHELL that cannot run it)
            tail = self.opening.tail
            reason = (self.judge.never_ran_reason(tail) if not self.opening.late else "timed out") or \
                f"the job loop did not start (exit {self.code})" + (
                    f": {tail.decode('utf-8', 'replace').strip().splitlines()[-1]}" if tail.strip() else "")
            self._report(Finished(self.idx, job.seq, 255, self.start, time.monotonic() - self.t0, Ending.NEVER_RAN,
                                  reason), None, False)
        elif job is not None:
            exit, ending, reason = self.judge.verdict(self.code, p, session=True)
            finished = timed(Finished(self.idx, job.seq, exit, self.start, time.monotonic() - self.t0, ending, reason),
                             p, self.t0)
            self._report(finished, pushed, ahead and pushed is not None and p.end == 0)
        self.kind.gone(self)

    def _report(self, finished, pushed, started):
        """Say the session's last job's end, and, if the job sent ahead behind it started as the
        session ended (its start mark was read), that one's: lost."""
        self.job, self.pushed = None, None
        if started:
            self.kind.started[self.idx] = pushed.hold
        if finished.ending in (Ending.NEVER_RAN, Ending.LOST) and finished.said is None:
            words = self.judge.words(self.p)
            if words:
                finished = dataclasses.replace(finished, said=words)
        self.kind.emit(self.idx, finished)
        if started:
            self.kind.emit(self.idx, Finished(self.idx, pushed.seq, 255, time.time(), 0.0, Ending.LOST,
                                              "its session ended as it started"))

    def gave_up(self):
        """The run's KILL was sent and the loop did not end: its job ends as what was read says."""
        self.child.wait()
        self._judge()

    def close_stdin(self):
        if self.writing:
            self.kind.sel.unregister(self.stdin)
            self.writing = False
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None

    def finish_quitting(self):
        """The run's end: the loop, told to quit, has exited (shutdown waited for it); what it wrote
        meanwhile is read, and it is judged."""
        for stream, fd in self.fds.items():
            while True:
                data = read_now(fd, READ_SIZE)
                if not data:
                    break
                self.reading.feed(self.p, self.reading.last_seq, stream, data)
        self._judge()

    def _close(self):
        self.watch(False)
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}
        self.close_stdin()
        if self.pidfd is not None:
            self.kind.sel.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        self.child.close()

    # ---- clocks ----------------------------------------------------------
    def due(self):
        if self.finished:
            return None
        due = [t for t in (self.kill_at, self.quit_at, None if self.runner is not None else self.start_by,
                           self.ping_at if self.job is not None and self.runner is not None else None,
                           self.waiting[1] if self.waiting else None) if t is not None]
        return min(due) if due else None

    def clock(self, now):
        if self.kill_at is not None and now >= self.kill_at:
            self.kill(signal.SIGKILL)
            self.kill_at = None
        if self.quit_at is not None and now >= self.quit_at and self.code is None:
            self.quit_at = float("inf")
            self.kill(signal.SIGTERM)  # a background process of some job holds the session
            self.kill_at = now + KILL_GRACE
        if self.runner is None and self.quit_at is None and now >= self.start_by:
            self.opening.late = True  # no ready mark within the start bound: the loop did not start
            self.start_by = float("inf")
            self.kill(signal.SIGKILL)
            self._close_streams()
            return
        if self.waiting is not None and now >= self.waiting[1]:
            finished, self.waiting = self.waiting[0], None  # the runner never said: it did not start it
            self.kill(signal.SIGTERM)
            self.kill_at = now + KILL_GRACE
            self._settle(finished, False)
            return
        if self.ping_at is not None and self.job is not None and self.runner is not None and now >= self.ping_at:
            self.ping_at = now + PING_EVERY
            self.write(self.kind.loop.ping(self.runner))

