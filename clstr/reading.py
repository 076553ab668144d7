"""Pure: the bytes an ssh (or a slot's session) writes, made into a job's output and its marks.

Bytes in, events out: ``Reading.feed`` takes what a read of stdout or stderr returned and hands
on whole lines of output (events.Output) to ``emit``, the marks taken out and recorded in the
attempt's ``Marked``; nothing here reads a descriptor or knows a process. The worker feeds it
from its read loop; anything else that reads an ssh's pipes can feed it the same way.

What it keeps between reads:
* a line not ended yet waits for the rest; a line that grows past STREAM_AT is sent on in
  pieces as it comes (as plain ssh streams it), all but its last bytes, where a mark may be
  beginning; the stream is then that job's until its line ends (a mark ends it);
* down a session, what comes before a job's begin mark (stdout) or start mark (stderr) is an
  earlier job's: its background process wrote it after it ended; it goes to the job the session
  ran last, a line it left unended ended;
* before a job starts, stderr is the login's and ssh's own: its tail is kept to tell why ssh
  failed, and ssh's own lines become Notices (shown under -v), not the job's output.
"""
from . import ssh
from .events import Notice, Output

STDERR_TAIL = 4096
STREAM_AT = 65536


class Marked:
    """What reading an attempt's output found: its marks, and the tails of its stderr."""

    __slots__ = ("timed_out", "late", "started", "end", "out_end", "ready", "tail", "begun", "loop_gone",
                 "last_err", "runner", "started_at", "ended_at", "shell", "sudo", "recalled", "ahead_ok")

    def __init__(self):
        self.timed_out = None  # or which limit ended it: Ending.TIMEOUT, IDLE_TIMEOUT or STRAGGLER
        self.late = False  # no start mark within the start bound
        self.started = False
        self.end = None  # the job's exit status, from its end mark
        self.out_end = False  # the loop's stdout mark: the job's stdout is all read
        self.ready = False  # the loop's ready mark
        self.runner = None  # the pid of the loop's runner, from its ready mark
        self.shell = None  # the pid of the job's wrapper on the node, from its start mark
        self.tail = b""  # stderr before the job started: the login's and ssh's
        self.begun = False  # the loop's begin mark: the job's stdout starts here
        self.loop_gone = False  # the loop's reader found its runner gone (the job killed it)
        self.last_err = b""  # the last bytes of stderr: where ssh says a connection was lost
        # when the start and end marks were read (the reader's clock): the job's own runtime lies
        # between them, whatever the node's clock says; before the start, opening the connection
        self.started_at = None
        self.ended_at = None
        self.sudo = None  # --sudo: sudo's words where it refused to start the job (its mark)
        self.recalled = False  # the reader signalled a recall of the job sent ahead, before this end
        self.ahead_ok = False  # the loop's ready mark: its runner can be recalled (jobs may go ahead)


class Reading:
    """The output of one ssh, or of a slot's session job after job.

    ``marks``: the run's ssh.Marks (a Wrapper or a Loop), None without remote cleanup (no marks);
    ``session``: a session of the job loop (marks on stdout too; late output attributed);
    ``emit(event)``: where Output and Notice events go; ``slot``: the slot they name.
    """

    def __init__(self, slot, marks, emit, session=False, clock=None):
        self.slot = slot
        self.clock = clock  # when marks are read (the worker's monotonic clock; None: not timed)
        self.marks = marks
        self.emit = emit
        self.session = session
        self.partial = {1: [], 2: []}  # chunks of a line not ended yet
        self.midline = {}  # stream -> the job whose line, sent on in pieces, is not ended yet
        self.last_seq = None  # the job the session ran last: output before a job's begin mark is its
        # down a session, the lines read after a job's end mark on each stream: the next job's (a
        # job sent ahead starts with no word from clstr), read once that job's reading starts
        self.later = {}

    def feed(self, p, seq, stream, data):
        """What a read of ``stream`` (1, 2) returned while attempt ``seq`` runs (None: opening a
        session), ``p`` its Marked."""
        if self.session and seq is not None and (p.out_end if stream == 1 else p.end is not None):
            self.later[stream] = self.later.get(stream, b"") + data  # the job's stream ended: the next job's
            return
        partial = self.partial[stream]
        cut = data.rfind(b"\n") + 1
        if not cut:
            partial.append(data)  # joined once its line ends: no quadratic copying
            if len(partial) > 1 and sum(map(len, partial)) >= STREAM_AT:
                self._stream(p, seq, stream, partial)
            return
        lines = b"".join(partial) + data[:cut]
        partial[:] = [data[cut:]] if cut < len(data) else []
        self.lines(p, seq, stream, lines)

    def resume(self, p, seq):
        """A job's reading starts: the lines read after the last job's end marks are its."""
        for stream in (1, 2):
            later = self.later.pop(stream, None)
            if later:
                self.feed(p, seq, stream, later)

    def next_is(self, kinds):
        """The kind of the first of ``kinds`` among the marks read after the last job's end on
        stderr, or None."""
        later = self.later.get(2)
        return self.marks.first_of(later, kinds) if later else None

    def leftover(self):
        """The session ends: what was read after its last job's end is that job's late output."""
        p = Marked()
        self.resume(p, None)
        self.give_up(p, None)

    def close(self, p, seq, stream):
        """The stream reached EOF: a line it left unended ends there."""
        self._end_partial(p, seq, stream)

    def give_up(self, p, seq):
        """The pipes are given up on (the attempt was ended): what they held still counts."""
        for stream in (1, 2):
            self._end_partial(p, seq, stream)

    def _end_partial(self, p, seq, stream):
        chunks = self.partial[stream]
        if chunks:
            rest = b"".join(chunks)
            chunks.clear()
            self.lines(p, seq, stream, rest + b"\n")

    def _stream(self, p, seq, stream, partial):
        data = b"".join(partial)
        keep = len(self.marks.mark) + 16 if self.marks is not None else 0
        partial[:] = [data[len(data) - keep:]] if keep else []
        head = data[:len(data) - keep]
        if head:
            self._out(p, seq, stream, head)

    def lines(self, p, seq, stream, lines):
        """Whole lines of a stream: marks taken out, the rest sent on as output of the job that wrote it."""
        if self.marks is not None and (stream == 2 or self.session):
            stop = None if seq is None or not self.session else ssh.MARK_STDOUT_END if stream == 1 else ssh.MARK_END
            pieces, rest = self.marks.split_until(lines, stop)
            for data, mark in pieces:
                if data:
                    self._out(p, seq, stream, data)
                if mark is not None:
                    self._mark(p, stream, mark)
            if rest is not None:  # the job's stream ended: what came after it is the next job's
                self.later[stream] = rest + b"".join(self.partial[stream])  # in the order it came
                self.partial[stream].clear()
        elif lines:
            self._out(p, seq, stream, lines)

    def _mark(self, p, stream, mark):
        owner = self.midline.pop(stream, None)
        if owner is not None:
            self.emit(Output(self.slot, owner, stream, b"\n"))  # a line sent on in pieces ends here
        kind = mark[0]
        if kind == ssh.MARK_START:
            p.started = True
            p.shell = mark[1] if len(mark) > 1 else None
            if self.clock is not None:
                p.started_at = self.clock()
        elif kind == ssh.MARK_END:
            p.end = mark[1]
            if self.clock is not None:
                p.ended_at = self.clock()
        elif kind == ssh.MARK_STDOUT_END:
            p.out_end = True
        elif kind == ssh.MARK_BEGIN:
            p.begun = True
        elif kind == ssh.MARK_READY:
            p.ready = True
            p.runner = mark[1]
            p.ahead_ok = len(mark) > 2 and mark[2]
        elif kind == ssh.MARK_LOOP_GONE:
            p.loop_gone = True
        elif kind == ssh.MARK_SUDO:
            p.sudo = mark[1]
        elif kind == ssh.MARK_RECALLED:
            # (read here, it came before the end mark: what follows that mark is the next job's)
            p.recalled = True  # signalled before the end mark: the job sent ahead is dropped
        # (ssh.MARK_DROPPED: a job sent ahead did not start; its worker knew it would, or asked)

    def _out(self, p, seq, stream, data):
        if stream == 2:
            p.last_err = (p.last_err + data)[-STDERR_TAIL:]
        began = p.begun if stream == 1 else p.started
        if self.session and not began and self.last_seq is not None:
            seq = self.last_seq
        elif stream == 2 and not p.started:
            p.tail = (p.tail + data)[-STDERR_TAIL:]  # before the job: ssh's and the login's own
            data = self._notes(data)
        if data and seq is not None:
            # only whole lines travel (or pieces of a line too long to hold, its stream reserved
            # to it until it ends), so lines of two jobs never mix
            self.emit(Output(self.slot, seq, stream, data))
            if data.endswith(b"\n"):
                self.midline.pop(stream, None)
            else:
                self.midline[stream] = seq

    def _notes(self, data):
        """``data`` (stderr before a job started) without ssh's own lines, which become Notices."""
        kept = []
        for line in data.splitlines(keepends=True):
            if ssh.classify(line)[0] is not None:
                self.emit(Notice(self.slot, "ssh: " + line.decode("utf-8", "replace").strip()))
            else:
                kept.append(line)
        return b"".join(kept)
