"""A slot's pipelined session: the long-lived session that runs the job loop
(clstr/remote/loop.sh) on the node, its jobs sent down its stdin one after another.

A forked worker (worker.py) keeps one a slot. It opens it on the slot's first job (its ready mark
says the loop runs), sends each job as a frame, reads the job's marks through the worker's pump,
and keeps it from job to job; a node that will not run the loop (a ForceCommand, a restricted
shell, no sh) makes the slot fall back to one session a job. Lookahead (lookahead.py) lives
here: the job the slot holds to run next is sent ahead down the session while the one before it
runs, and the loop's runner starts it itself as that one ends with status 0 (or drops it: a
failure, a recall); where it cannot go ahead, it goes down the moment the end mark says status 0.
"""
import os
import select
import selectors
import time

from . import ssh
from .board import CONNECTING, IDLE, RUNNING
from .events import Connected, Finished, Notice, Recalled
from .proc import PIPE, Child, end_group
from .reading import Reading
from .result import Ending

FALL_BACK = object()  # the job loop cannot run on the node: one session a job
LOST = object()  # a job sent ahead started as its session ended: it is lost
OUTCOME_WAIT = 30.0  # at most this long for the runner to say whether a recalled job started


class Channel:
    """An ssh child and our ends of its pipes: stdout and stderr read (``reading``: a
    reading.Reading), stdin to write.

    One job's ssh in the one-session-a-job mode; in pipelined mode the slot's long-lived session,
    read job after job (a line a job left unended waits in its Reading for the rest).
    """

    def __init__(self, child, reading):
        self.child = child
        self.reading = reading
        self.stdin = child.fds.pop(0, None)
        self.out = {1: child.fds.pop(1), 2: child.fds.pop(2)}  # streams not at EOF yet
        for fd in self.out.values():
            os.set_blocking(fd, False)
        if self.stdin is not None:
            os.set_blocking(self.stdin, False)
        self.eof = False  # a stream closed: the ssh (session) is ending
        self.sel = None  # the selector watching the streams, once watched

    def watch(self, sel):
        """Have ``sel`` watch the open streams (a session's stay watched from job to job)."""
        if self.sel is None:
            self.sel = sel
            for stream, fd in self.out.items():
                sel.register(fd, selectors.EVENT_READ, stream)

    def ended(self, stream):
        """A stream reached EOF: no longer watched, closed."""
        fd = self.out.pop(stream)
        if self.sel is not None:
            self.sel.unregister(fd)
        os.close(fd)
        self.eof = True

    def unwatch(self):
        if self.sel is not None:
            for fd in self.out.values():
                self.sel.unregister(fd)
            self.sel = None

    def close_stdin(self):
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None

    def close(self):
        self.unwatch()
        self.close_stdin()
        for fd in self.out.values():
            os.close(fd)
        self.out = {}
        self.child.close()


class Pipelined:
    """The session of worker ``w``'s slot; ``loop``: the run's ssh.Loop (None: the loop is not
    used, or could not start here: one session a job)."""

    def __init__(self, w, loop, drain_grace):
        self.w = w
        self.loop = loop
        self.drain_grace = drain_grace
        self.chan = None  # the loop's Channel while it lives
        self.secret = False  # the loop's session holds sudo's password
        self.runner = None  # the pid of the loop's runner, from its ready mark
        # lookahead: the held job (an events.Job) to start the moment the running one ends with
        # status 0, and the one started so (with its start times and what of its frame is yet to go)
        self.ahead = None
        self.promoted = None
        # a held job sent ahead down the session (Loop.ahead) while the one before it runs; whether
        # its recall was wanted and went down; a session a recall went down sends nothing more ahead
        self.pushed = None
        self.recall = None  # None, "wanted" (once the running job's start mark came) or "sent"
        self.no_ahead = True

    def run(self, job, start, t0, sent=None):
        """Run the attempt down the slot's session; None if the loop cannot run here (fall back).
        ``sent``: its frame went down already (a held job), but for these bytes."""
        w = self.w
        if sent is LOST:
            return Finished(w.slot, job.seq, 255, start, 0.0, Ending.LOST, "its session ended as it started")
        if self.chan is None:
            # without a shared connection, its session is its connection: while it opens, the job may
            # go to a slot that is ready (not a job with files: they were sent for it)
            gated = not w.control_path and job.files is None and not job.basefiles
            if gated:
                w.board.open_gate(w.slot)
            failure = self._open(t0)
            if gated and w.board.claim(w.slot) and failure in (None, FALL_BACK):
                return w.given_away(job, start, t0)  # (a slot that falls back is up too)
            if failure is FALL_BACK:
                return None
            if failure is not None:
                return Finished(w.slot, job.seq, 255, start, time.monotonic() - t0, Ending.NEVER_RAN, failure)
            if not w.control_path:
                w.conn.send(Connected(w.slot))  # the slot's own connection is up
        chan = self.chan
        w.board.state[w.slot] = RUNNING
        feed = self._frame(job) if sent is None else sent
        if self.ahead is not None:  # held as the session opened: it goes ahead with this job's frame
            frame = self._ahead(self.ahead, job.seq)
            if frame is not None:
                self.pushed, self.ahead, feed = self.ahead, None, feed + frame
        p = w.pump(chan, job.seq, t0, feed, until_marks=True)
        runtime = time.monotonic() - t0
        ahead, self.ahead = self.ahead, None
        pushed, self.pushed, recall, self.recall = self.pushed, None, self.recall, None
        if p.end is not None and p.out_end and not chan.eof and not (p.timed_out or p.late or p.loop_gone):
            chan.reading.last_seq = job.seq
            exit, ending, reason = w.judge.verdict(None, p, session=True)  # its end mark's, or sudo's refusal
            self._next(job, p, ending, pushed, recall, ahead)
            return Finished(w.slot, job.seq, exit, start, runtime, ending, reason)
        w.board.state[w.slot] = IDLE
        if pushed is not None:
            if chan.reading.next_is((ssh.MARK_START, ssh.MARK_DROPPED)) == ssh.MARK_START:
                self.promoted = (pushed, time.time(), time.monotonic(), LOST)  # started as the session ended
            else:
                w.board.hold(w.slot, pushed.hold)
        code = self.end()
        if not (p.late or p.timed_out or p.end is not None or p.loop_gone or p.started) and code >= 0 \
                and w.judge.never_ran_reason(p.tail) is None:
            # the loop took the session but died before starting the job (an sh it cannot run on)
            self._fall_back(f"the job loop ended (exit {code}) before the job started")
            return None
        exit, ending, reason = w.judge.verdict(code, p, session=True)
        return Finished(w.slot, job.seq, exit, start, runtime, ending, reason)

    def _next(self, job, p, ending, pushed, recall, ahead):
        """``job`` ended as its marks say: the job sent ahead behind it runs now, or goes back to
        the supervisor; else the job it held starts now (``promoted``), or the slot is idle."""
        w, chan = self.w, self.chan
        if pushed is not None:
            # the runner starts it if this job's status is 0 and no recall came: as it says
            if p.end == 0 and (recall != "sent" or self._outcome(chan, p, job.seq) == ssh.MARK_START):
                self.promoted = (pushed, time.time(), time.monotonic(), b"" if self.chan else LOST)
                return
            w.board.hold(w.slot, pushed.hold)  # not started: the supervisor takes it back
        if ending is Ending.OK and ahead is not None and ahead.after == job.seq and w.board.take(w.slot, ahead.hold):
            # the job it held starts now, before this one's end is told: no round trip between
            self.promoted = (ahead, time.time(), time.monotonic(), w.write_now(chan.stdin, self._frame(ahead)))
        else:
            w.board.state[w.slot] = IDLE

    def push(self, job, seq, feeding):
        """A held job came while job ``seq`` runs: send it ahead down the session, so that the runner
        starts it the moment ``seq`` ends with status 0, with no round trip between. False if it
        is kept to be sent at that end instead (Pipelined.run)."""
        frame = self._ahead(job, seq, feeding)
        if frame is None:
            return False
        if self.w.write_now(self.chan.stdin, frame):  # the pipe took none of it: kept to be sent at the end
            self.w.board.hold(self.w.slot, job.hold)
            return False
        self.pushed = job
        return True

    def _ahead(self, job, seq, feeding=False):
        """The bytes that send the held ``job`` ahead behind ``seq``, taken from the board (it is
        the worker's now), or None where it cannot go ahead."""
        w = self.w
        if self.chan is None or self.loop is None or self.no_ahead or feeding or job.after != seq \
                or self.pushed is not None or w.reach.acks:
            # (a transport that acks: its marks come only as fast as its ACKs, which the round trip paces)
            return None
        frame = self.loop.ahead(w.text(job)[0])
        # (a write to a pipe of at most PIPE_BUF bytes goes whole or not at all)
        if len(frame) > select.PIPE_BUF or not w.board.take(w.slot, job.hold):
            return None
        return frame

    def recall_wanted(self, number, p):
        """The supervisor wants the held job ``number`` back: if it went ahead down the session, the
        reader is asked to signal the runner, once the running job's start mark came (loop.sh)."""
        if self.pushed is not None and self.pushed.hold == number and self.recall is None:
            self.recall = "wanted"
            self.no_ahead = True  # a recall may come late: a session it went down sends nothing more ahead
            self.recall_read(p)

    def recall_read(self, p):
        """Where a recall is under way, after what was read of the running job (``p``): a wanted
        one goes down once the job's start mark came, and not after its end; once the reader said
        it signalled the runner before the end mark, the job sent ahead will be dropped, and its
        hold is the supervisor's to take back (it asked for it: this worker never starts it)."""
        if self.recall == "wanted" and p.started and p.end is None and self.chan is not None and self.runner:
            self.w.write_now(self.chan.stdin, self.loop.recall(self.runner))
            self.recall = "sent"
        if self.recall == "sent" and p.recalled and self.pushed is not None:
            job, self.pushed, self.recall = self.pushed, None, None
            self.w.board.hold(self.w.slot, job.hold)
            self.w.conn.send(Recalled(self.w.slot))

    def _outcome(self, chan, p, seq):
        """Whether the recalled job sent ahead started (MARK_START) or was dropped: the runner's
        next mark on stderr says, read on (the next job's) until it comes; None if the session
        ended first (it did not start: its runner is gone)."""
        sel = selectors.DefaultSelector()
        for stream, fd in chan.out.items():
            sel.register(fd, selectors.EVENT_READ, stream)
        give_up = time.monotonic() + OUTCOME_WAIT
        try:
            while True:
                found = chan.reading.next_is((ssh.MARK_START, ssh.MARK_DROPPED))
                if found is not None or chan.eof or not chan.out:
                    return found
                left = give_up - time.monotonic()
                if left <= 0:
                    self.end()
                    return None
                for key, _ in sel.select(left):
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if data:
                        chan.reading.feed(p, seq, key.data, data)  # after this job's end: kept for the next
                    else:
                        sel.unregister(key.fd)
                        chan.ended(key.data)
        finally:
            sel.close()

    def _frame(self, job):
        """What goes down the session for ``job`` (sudo's password first, where the node asked)."""
        text, password = self.w.text(job)
        feed = self.loop.frame(text)
        if password is not None and not self.secret:
            feed = self.loop.secret(password) + feed
            self.secret = True
        return feed

    def _open(self, t0):
        """Start the slot's session and wait for the loop's ready mark.

        Returns None once ready, FALL_BACK if the node would not run the loop (no ssh failure, but
        no ready mark: a ForceCommand, a restricted shell, no sh), or the ssh failure's reason.
        """
        w = self.w
        w.board.state[w.slot] = CONNECTING
        argv = w.reach.argv(self.loop.start_line(), w.control_path)
        chan = Channel(Child(argv, w.env, PIPE, PIPE, PIPE), Reading(w.slot, self.loop, w.emit, session=True,
                                                                      clock=time.monotonic))
        w.board.pid[w.slot] = chan.child.pid
        self.chan = chan
        self.secret = False
        self.runner = None
        p = w.pump(chan, None, t0, until_marks=True)
        if p.ready and not chan.eof:
            self.runner = p.runner
            self.no_ahead = not p.ahead_ok  # a runner that cannot be recalled gets nothing ahead
            return None
        code = self.end()
        if p.late:
            return "timed out"
        reason = w.judge.never_ran_reason(p.tail)
        if reason is not None or code < 0:
            return reason or f"ssh killed by signal {-code}"
        if code == 255 and not w.control_path:
            return "ssh exit 255"
        self._fall_back(f"the job loop did not start (exit {code})" +
                        (f": {p.tail.decode('utf-8', 'replace').strip().splitlines()[-1]}" if p.tail.strip() else ""))
        return FALL_BACK

    def _fall_back(self, why):
        self.loop = None
        self.w.conn.send(Notice(self.w.slot, f"{why}; one ssh session a job on this slot"))

    def end(self):
        """End the session at once (ssh's group: TERM, then KILL); returns ssh's exit status."""
        chan, self.chan = self.chan, None
        end_group(chan.child.pid, child=chan.child)
        code = chan.child.wait()
        chan.reading.leftover()
        chan.close()
        self.w.board.pid[self.w.slot] = 0
        self.w.board.state[self.w.slot] = IDLE
        return code

    def close(self):
        """Tell the loop to end, give it its drain grace to go, then end what is left of the session."""
        chan = self.chan
        if chan is None:
            return
        try:
            if chan.stdin is not None:
                os.write(chan.stdin, self.loop.QUIT if self.loop else b"q\n")
        except OSError:
            pass
        chan.close_stdin()
        if chan.child.wait(self.drain_grace) is None:
            # a background process of some job holds the session's output: it is cut off here
            self.end()
            return
        self.chan = None
        chan.reading.leftover()
        chan.close()
        self.w.board.pid[self.w.slot] = 0
