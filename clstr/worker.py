"""The worker body: one process per node slot, running its attempts one at a time.

It takes ``events.Job`` messages from its pipe and runs each attempt: pipelined, down the slot's
long-lived ssh session, which runs the job loop (clstr/remote/loop.sh) and which it keeps from
job to job; else in an ssh session of its own a job (the wrapper). Its output goes back as whole
lines (reading.py), its end as one ``Finished`` (judging.py says how it ended); the time limits
are deadlines.py's. Between jobs it keeps the slot's session, what it learned of the node (its
jump host) and whether the loop can run there.
"""
import dataclasses
import os
import selectors
import signal
import time
from dataclasses import dataclass
from typing import Optional

from . import ssh, sudo, transports
from .events import REPLACED, Connected, Deferred, Finished, Job, Limit, Notice, Recall
from .result import Ending
from .board import IDLE, RUNNING
from .deadlines import Deadlines, start_bound
from .proc import PIPE, Child, end_group, spawn_error
from .slotfiles import Moved, SlotFiles
from .asking import NodeQuestions
from .judging import Judge, after_asking, asks_jump_host, timed
from .master import Master
from .phases import overdue, replaced
from .reading import Marked, Reading
from .session import Channel, Pipelined

READ_SIZE = 65536
# Once clstr ended an ssh (timeout, no start), its pipes are read for at most this long more: a
# ControlMaster holds a client's pipes for as long as the remote session lives.
DRAIN_GRACE = 1.0
MAX_WAIT = 3600.0  # the longest single wait: epoll takes no timeout past about 24 days
# Output waits at most this long, or until this much is held, to travel with other events:
# a short job's lines then reach the supervisor together with its end, in one message.
HOLD_SECONDS = 0.05
HOLD_BYTES = 65536
CONFIG_WAIT = ssh.CONFIG_WAIT
# While a pipelined job runs, the loop's reader is asked this often whether the runner lives: a
# job that killed it (SIGKILL) would otherwise leave the slot waiting for an end mark forever.
PING_EVERY = 5.0
# a stdout mark whose stderr mark has not come this long after: the transport may hold it (transports.Slurm.acks)
NUDGE_AFTER = 0.005


DRAINED, ENDED = "drained", "ended"  # what a clock that came due did (SlotWorker._clock)


def done(chan, p, seq, until_marks):
    """Whether a reading (SlotWorker.pump) is over: both streams closed, or, reading a session
    (``until_marks``), the job's end marks came (its ready mark, with ``seq`` None), or the loop
    is gone."""
    if not chan.out:
        return True
    if not until_marks or chan.eof:
        return False
    if p.loop_gone:
        return True
    return p.ready if seq is None else (p.end is not None and p.out_end)


class SupervisorGone(Exception):
    """The supervisor's end of the pipe closed: end the job and exit."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a slot's worker is given, once, when the slot pool starts it (see pool.py's contract)."""

    slot: int
    node: str
    ssh: ssh.SshConfig  # how to reach the node: command, options, time limits, marks, pipelining
    env: dict  # the environment of every ssh it starts (it carries the run's reaper marker)
    control_path: Optional[str] = None  # the node's ControlMaster socket (None: no shared connection)
    timeout: Optional[float] = None  # --timeout SECONDS of each attempt
    idle_timeout: Optional[float] = None  # --idle-timeout: the longest silence of an attempt
    files: Optional[object] = None  # transfer.Files: the work directory, cleanup and basefiles
    persist: Optional[float] = None  # --persist: masters idle on this long after the run, found again by the next


class SlotWorker:
    """Runs the jobs of one slot: ``serve`` loops until told to stop."""

    def __init__(self, spec, conn, board):
        self.slot = spec.slot
        self.node = spec.node
        self.conn = conn
        self.reach = transports.of(spec.ssh, spec.node)  # how the node is reached: every argv to it
        # pipelined: the slot's jobs go down one session running the remote job loop (session.py); its
        # loop is None once the loop could not start on this node (then one session a job, as without it)
        self.wrapper, loop = ssh.marks_of(spec.ssh)
        self.pipe = Pipelined(self, loop, DRAIN_GRACE)
        self.sudo = spec.ssh.sudo  # --sudo: the user jobs run as (sudo.py)
        self.sudo_env = spec.ssh.env
        self.node_asks = False  # --sudo: the node's sudo asked for a password (then it is sent it)
        self.marked = None  # the Marked of the attempt's last reading: its marks and when they came
        self.persist = spec.persist
        self.connect_timeout = spec.ssh.connect_timeout
        self.board = board
        self.env = spec.env
        self.control_path = spec.control_path
        self.judge = Judge(self.wrapper is not None, spec.control_path, self.reach)
        self.devnull = os.open(os.devnull, os.O_RDWR)
        # the node's shared connection, where the slot has one (its first attempt opens it)
        self.master = Master(spec.slot, self.reach, spec.control_path, spec.persist, spec.env,
                             spec.ssh.connect_timeout, self.judge, board, self.devnull) if spec.control_path else None
        self.files = spec.files  # transfer.Files of the run, or None
        self.token = spec.ssh.mark
        self.timeout = spec.timeout
        self.idle_timeout = spec.idle_timeout  # end a job that wrote nothing for this long
        self.limit = None  # the running job's straggler limit (--timeout N%), seconds
        self.outbox = []  # events held to travel in one message
        # its files: the file session, the steps of an attempt's transfers (None: a run without files)
        self.slot_files = None if spec.files is None else SlotFiles(
            spec.slot, spec.node, spec.files, self.reach, spec.control_path, spec.env, spec.ssh.mark,
            spec.ssh.connect_timeout, board, self.devnull, conn.send, lambda: self.pipe.chan is not None)
        self.held = 0
        self.hold_until = None
        self.ask = NodeQuestions(self.reach, spec.env, spec.ssh.connect_timeout, self.devnull)
        self.last = (None, False)  # (seq, ended well) of the slot's last job (a held job follows one)
        # one epoll for the worker's life: the pipe (nothing comes down it while a job runs, unless
        # the supervisor is gone) and the streams of the running ssh or of the session
        self.sel = selectors.DefaultSelector()
        self.sel.register(conn, selectors.EVENT_READ, 0)

    def serve(self, first=None):
        """Run ``first``, then each job that comes down the pipe, until told to stop."""
        job = first
        try:
            while True:
                begun = None
                if self.pipe.promoted is not None:
                    job, begun, self.pipe.promoted = self.pipe.promoted[0], self.pipe.promoted[1:], None
                elif job is None:
                    try:
                        job = self.conn.recv()
                    except (EOFError, OSError):
                        return  # the supervisor is gone
                    if job is None:
                        return
                    if isinstance(job, (Limit, Recall)):
                        job = None  # meant for a job that ended as it was sent: nothing to limit or recall
                        continue
                    if job.hold and not (self.last == (job.after, True) and self.board.take(self.slot, job.hold)):
                        job = None  # held for a job that did not end well, or taken back: not ours
                        continue
                if job.lookup and self.ask.jump_host():
                    # behind a jump host that refuses handshakes: wait for a turn under its limit
                    finished = Deferred(self.slot, job.seq, self.ask.jump_host())
                else:
                    finished = sudo.settled(job, self.run(job, begun))
                    if isinstance(finished, Finished) and finished.ending in (Ending.NEVER_RAN, Ending.LOST):
                        finished = dataclasses.replace(finished, said=self.judge.words(self.marked))
                    if isinstance(finished, Finished) and asks_jump_host(job, finished):
                        # a refusal may be the jump host's: say which it is ("" for none)
                        finished = dataclasses.replace(finished, jump_host=self.ask.jump_host() or "")
                self.outbox.append(finished)
                self._flush()
                self.last = (job.seq, isinstance(finished, Finished) and finished.ending is Ending.OK)
                job = None
        finally:
            self.pipe.close()
            if self.slot_files is not None:
                self.slot_files.close()

    def emit(self, ev):
        """An Output or Notice: held to travel with what follows (up to HOLD_SECONDS, HOLD_BYTES)."""
        self.outbox.append(ev)
        self.held += len(getattr(ev, "data", b""))
        if self.hold_until is None:
            self.hold_until = time.monotonic() + HOLD_SECONDS
        if self.held >= HOLD_BYTES:
            self._flush()

    def _flush(self):
        if self.outbox:
            self.conn.send(self.outbox)
        self.outbox, self.held, self.hold_until = [], 0, None

    def run(self, job, begun=None):
        """Run one attempt, its files included; returns its Finished event (output was sent on the way).
        ``begun``: (start, t0, the rest of its frame) of a held job its slot's last job started."""
        if self.slot_files is not None:
            finished = self.slot_files.by_rsync_if(job)
            if finished is not None:
                return finished
        f = self.slot_files
        self.limit = job.limit
        self.marked = None
        start, t0 = begun[:2] if begun else (time.time(), time.monotonic())
        moved = Moved()
        if job.connect and self.control_path:
            if not job.basefiles:  # (the opener of a connection sends the node's basefiles: it starts)
                self.board.open_gate(self.slot)  # while it connects, its job may go to a slot that is ready
            ok, reason = self.master.open()
            withdrawn = self.board.claim(self.slot)
            waited = time.monotonic() - t0
            if not ok:
                self.board.state[self.slot] = IDLE
                return Finished(self.slot, job.seq, 255, start, 0.0, Ending.NEVER_RAN, reason, connect=waited,
                                began=waited)
            if withdrawn:
                return self.given_away(job, start, t0, self.master.reused)
            # basefiles before the others of the connection's slots may start (they wait for Connected)
            failure = f.step(moved, f.basefiles, job) if job.basefiles else None
            self.conn.send(Connected(self.slot, self.master.reused))
        else:
            failure = f.step(moved, f.basefiles, job) if job.basefiles else None
            if job.connect:  # a node whose transport has no connection to share: its group is up at once
                self.conn.send(Connected(self.slot, False))
        if failure is None and f is not None and (job.files is not None or not f.made_workdir):
            failure = f.step(moved, f.send, job)
        if failure is not None:
            ending, reason, file = failure
            return f.result(self._timed(Finished(self.slot, job.seq, 255, start, time.monotonic() - t0,
                                                         ending, reason, file=file), t0, moved.seconds), moved)
        self.marked = None
        if self.files is not None and self.files.only:  # --copy/--rcopy: the files were the attempt
            finished = Finished(self.slot, job.seq, 0, start, time.monotonic() - t0, Ending.OK)
        else:
            finished = self._attempt(job, start, t0, begun)
        if sudo.asks(job, finished, self.node_asks):
            self.node_asks = True  # it has the password the node asks for: the attempt again, with it
            finished = self._attempt(job, start, t0)
        if finished is not None and self.master and replaced(job, self.master.reused, self.judge):
            # the persisted master was dead (its node restarted) and died when asked for the job's
            # session: ssh went on over a connection of the job's own; the next opener makes a new one
            self.master.reused = False
            self.conn.send(Notice(self.slot, REPLACED, replaced=True))
        if finished is not None:
            finished = self._timed(finished, t0, moved.seconds)
        if job.files is not None and (job.files.returns or self.files.cleanup) and finished is not None:
            if finished.ending is Ending.OK and job.files.returns:
                failure = f.step(moved, f.fetch, job)
                if failure is not None:
                    finished = dataclasses.replace(finished, exit=255, ending=failure[0], reason=failure[1],
                                                   file=failure[2])
            if self.files.cleanup:
                f.step(moved, f.clean, job)  # a file that cannot be removed fails nothing
        return finished if f is None else f.result(finished, moved)

    def given_away(self, job, start, t0, reused=None):
        """The attempt's job went to a ready slot while this one connected (board.claim said so): it
        never starts here; the connection is up for the slot's next job."""
        self.conn.send(Connected(self.slot, reused))
        self.board.state[self.slot] = IDLE
        waited = time.monotonic() - t0
        return Finished(self.slot, job.seq, 0, start, 0.0, Ending.OK, connect=waited, began=waited)

    def _timed(self, finished, t0, before):
        """``finished`` with its time split (judging.timed), from the attempt's last reading."""
        return timed(finished, self.marked, t0, before, self.wrapper is not None or self.pipe.loop is not None)

    def _attempt(self, job, start, t0, begun=None):
        """The job itself: down the slot's session, or in an ssh session of its own."""
        if begun is not None:
            return self.pipe.run(job, start, t0, begun[2])  # its frame went down the session
        if self.pipe.loop is not None:
            finished = self.pipe.run(job, start, t0)
            if finished is not None:
                return finished
        if self.wrapper is not None:
            line, feed = self.wrapper.line(*self.text(job))
        else:
            line, feed = job.command, None
        argv = self.reach.argv(line, self.control_path, self.wrapper is not None)
        # with remote cleanup, ssh's stdin is a pipe we hold open and never write (but for a job too
        # long for the command line, sent first): its closing tells the node to end the job
        try:
            child = Child(argv, self.env, PIPE if self.wrapper else self.devnull, PIPE, PIPE)
        except OSError as e:  # here, before the node was asked anything: named with its errno
            return Finished(self.slot, job.seq, 255, start, time.monotonic() - t0, Ending.NEVER_RAN,
                            f"ssh could not be started here: {spawn_error(e)}")
        chan = Channel(child, Reading(self.slot, self.wrapper, self.emit, clock=time.monotonic))
        self.board.pid[self.slot] = chan.child.pid
        self.board.state[self.slot] = RUNNING
        try:
            p = self.pump(chan, job.seq, t0, feed)
            code = chan.child.wait()
        finally:
            chan.close()
        self.board.pid[self.slot] = 0
        self.board.state[self.slot] = IDLE
        exit, ending, reason = self.judge.verdict(code, p)
        finished = Finished(self.slot, job.seq, exit, start, time.monotonic() - t0, ending, reason)
        if self.judge.asks_node(finished, p):
            finished = after_asking(finished, *self.ask.alive(p.shell), self.judge.silent_is_kept)
        return finished

    def text(self, job):
        """(what the node runs for the job, sudo's password for it or None): under --sudo the job
        is sudo.line's, given the password where the node asked for one."""
        if self.sudo is None or not sudo.applies(job):
            return job.command, None
        password = job.sudo_password if self.node_asks else None
        return sudo.line(job.command, self.sudo, self.token, self.sudo_env, password is not None), password

    # ---- reading -------------------------------------------------------
    def pump(self, chan, seq, t0, feed=None, until_marks=False):
        """Forward complete lines of stdout and stderr; enforce the time limits.

        Reads until both streams close or, with ``until_marks`` (a session), until the loop's
        marks end the job (or, with ``seq`` None, until its ready mark). Returns a reading.Marked:
        whether the job timed out, its marks, and (before any start mark) the stderr tail that
        tells why ssh failed. Streams found at EOF are closed and taken out of ``chan.out``.
        """
        p = self.marked = Marked()
        reading = chan.reading
        if until_marks and seq is not None:
            reading.resume(p, seq)  # what the session wrote after the last job's end is this one's
        sel = self.sel
        chan.watch(sel)
        if feed:
            feed = self.write_now(chan.stdin, feed)  # a job's frame usually fits the pipe at once
        if feed:
            sel.register(chan.stdin, selectors.EVENT_WRITE, "feed")
        d = Deadlines(t0, self.timeout, self.idle_timeout, self.limit,
                      start_bound(self.connect_timeout) if self.wrapper is not None else None,
                      # a pipelined job: the loop's reader is asked now and then whether the runner lives
                      PING_EVERY if until_marks and self.pipe.runner else None, job=seq is not None)
        try:
            nudge_at = None  # when to answer a stdout mark whose stderr mark lags (transports.Slurm.acks)
            while not done(chan, p, seq, until_marks):
                started = p.ready if seq is None else p.started
                due = d.next(started, self.hold_until)
                if nudge_at is not None:
                    nudge_at, due = self._nudge(chan, p, nudge_at, due)
                ready = sel.select(MAX_WAIT if due is None else min(MAX_WAIT, max(0.0, due - time.monotonic())))
                now = time.monotonic() if due is not None else 0.0
                if due is not None and now >= due:  # a clock is due: which (most wakes are reads)
                    what = self._clock(chan, d, p, now, started)
                    if what is DRAINED:
                        break
                    if what is ENDED:
                        continue
                for key, _ in ready:
                    stream = key.data
                    if stream == 0:
                        self._heard(chan, d, seq, p, feed)
                        continue
                    if stream == "feed":
                        feed = self._feed(sel, key.fd, feed)
                        continue
                    if self._read(chan, p, seq, d, key.fd, stream):
                        nudge_at = time.monotonic() + NUDGE_AFTER  # transports.Slurm.acks
            if chan.eof or d.drain_by is not None:
                reading.give_up(p, seq)  # pipes given up on: what they held still counts
        finally:
            if feed:
                sel.unregister(chan.stdin)  # ssh ended before taking it all
            if not until_marks:
                chan.unwatch()
        return p

    def _read(self, chan, p, seq, d, fd, stream):
        """Read what ``stream`` (1 or 2) holds now into the reading; True if a mark came that the
        transport may hold back (a nudge is then due: transports.Slurm.acks)."""
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        d.output(time.monotonic() if d.idle else 0.0)
        started, marked_out = p.started, (p.begun, p.out_end)
        nudge = False
        if data:
            chan.reading.feed(p, seq, stream, data)
            nudge = self.reach.acks and bool(self.pipe.runner) and (p.begun, p.out_end) != marked_out
            if self.pipe.recall is not None:
                self.pipe.recall_read(p)
        else:
            chan.ended(stream)
            chan.reading.close(p, seq, stream)
        if p.started_at is not None and not started:
            d.began(p.started_at)  # a straggler's limit counts from the job's start
        if p.started and not started and self.pipe.chan is None and not self.control_path:
            self.conn.send(Connected(self.slot))  # this job's own connection is up
        return nudge

    def _nudge(self, chan, p, nudge_at, due):
        """(nudge_at, due): a stdout mark whose stderr mark lags is answered once NUDGE_AFTER has
        passed (transports.Slurm.acks); until then its time is one of the loop's clocks."""
        if (p.started or not p.begun) and (p.end is not None or not p.out_end):
            return None, due  # the stderr mark came
        if time.monotonic() >= nudge_at:
            self.write_now(chan.stdin, self.pipe.loop.ping(self.pipe.runner))
            return None, due
        return nudge_at, nudge_at if due is None else min(due, nudge_at)

    def _clock(self, chan, d, p, now, started):
        """A clock of the attempt is due: held output goes, a deadline ends the attempt (ENDED: its
        group was sent TERM, its pipes drain), the drain is over (DRAINED), or the reader is pinged."""
        if self.hold_until is not None and now >= self.hold_until:
            self._flush()
        if d.drained(now):
            return DRAINED
        if overdue(d, p, now, started):
            end_group(chan.child.pid, child=chan.child)
            d.drain(time.monotonic(), DRAIN_GRACE)
            return ENDED
        if d.ping_due(now):
            self.write_now(chan.stdin, self.pipe.loop.ping(self.pipe.runner))
        return None

    def _heard(self, chan, d, seq, p, feed):
        """The supervisor spoke while job ``seq`` runs: a straggler's limit, a held job (sent ahead
        down the session where it can be, else kept), or its recall; or it is gone."""
        msg = self._message_while_running()
        if msg is None:
            end_group(chan.child.pid, child=chan.child)
            raise SupervisorGone()
        if isinstance(msg, Limit):
            d.limit(msg.seconds)
        elif isinstance(msg, Recall):
            self.pipe.recall_wanted(msg.hold, p)
        elif not self.pipe.push(msg, seq, bool(feed)):
            self.pipe.ahead = msg  # a held job (lookahead.py)

    def _message_while_running(self):
        """What the supervisor sent while a job runs: a Limit, a held Job, a Recall, or None if it is
        gone (EOF)."""
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            return None
        return msg if isinstance(msg, (Limit, Recall)) or (isinstance(msg, Job) and msg.hold) else None

    @staticmethod
    def write_now(fd, data):
        """Write what the pipe takes of ``data`` now; returns the rest."""
        try:
            return data[os.write(fd, data):]
        except BlockingIOError:
            return data
        except OSError:  # ssh is gone: its end says why
            return b""

    def _feed(self, sel, fd, feed):
        """Write what ssh's stdin takes now of a job sent that way; the rest on the next turn."""
        feed = self.write_now(fd, feed)
        if not feed:
            sel.unregister(fd)
        return feed


def worker_main(spec, conn, board, close, first):
    """Entry point of a forked worker process: ``spec`` (a WorkerSpec), its end of the pipe, the
    shared slot board, the supervisor's descriptors it must ``close``, and ``first``, its first
    job, given at the fork."""
    # the supervisor owns Ctrl-C: it ends our ssh itself and tells us to stop
    # and a SIGTERM or SIGHUP sent to the run's whole process group (timeout(1), systemd, kill --
    # -PGID): the supervisor hears it too and stops the run; a worker that died of it would leave
    # a file half brought back, and its end would be taken for a death
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for c in close:
        try:
            c.close()
        except OSError:
            pass
    try:
        SlotWorker(spec, conn, board).serve(first)
    except (BrokenPipeError, EOFError, SupervisorGone):
        pass  # the supervisor went away: nobody would read what we have
