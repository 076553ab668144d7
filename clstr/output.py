"""Where results go: job output lines, the status line, the active-nodes and --state files.

The supervisor is the only writer of all of these.
"""
import collections
import io
import json
import os
import select
import selectors
import signal
import stat
import struct
import tempfile

from . import hostlist
from .errors import InputError
from .templates import as_file_name
from .words import cut

class StatusDisplay:
    """The live status line on stderr.

    On a terminal it is redrawn in place (at most every ``interval`` seconds);
    elsewhere a plain line is written at most every ``plain_interval`` seconds,
    so logs get no carriage-return spam. Never opens /dev/tty.
    """

    def __init__(self, stream, clock, tty=None, interval=0.25, plain_interval=5.0, bar=False, width=None):
        self.stream = stream
        self.bar = bar
        self.width = width
        self.clock = clock
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval if self.tty else plain_interval
        self.last = None
        self.shown = False
        self.line = ""
        self.drawn = None  # the line last drawn

    def due(self):
        return self.last is None or self.clock() - self.last >= self.interval

    def update(self, line, force=False, fraction=None):
        if self.bar and fraction is not None:
            line = progress_bar(fraction, self._width()) + " " + line
        self.line = line
        if force or self.due():
            self.last = self.clock()
            self.draw()

    def _width(self):
        if self.width:
            return self.width
        try:
            return max(10, min(40, os.get_terminal_size(self.stream.fileno()).columns // 3))
        except (OSError, ValueError, AttributeError):
            return 20

    def _put(self, text):
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = None  # stderr is gone: the status goes with it, the run goes on

    def draw(self):
        if self.tty:
            self._put("\r" + self.line + "\x1b[K")
            self.shown = True
        elif self.line != self.drawn:
            # among clstr's other lines in a log: named as they are, and never the same line twice
            self._put("clstr: " + self.line + "\n")
        self.drawn = self.line

    def clear(self):
        """Take the line off the terminal before other output is written there."""
        if self.tty and self.shown:
            self._put("\r\x1b[K")
            self.shown = False

    def close(self):
        if not self.line:
            return
        self.draw()
        if self.tty:
            self._put("\n")
            self.shown = False


def progress_bar(fraction, width):
    """``[#########...........]  45%`` in plain characters."""
    fraction = min(1.0, max(0.0, fraction))
    done = int(round(fraction * width))
    return f"[{'#' * done}{'.' * (width - done)}] {int(fraction * 100):3d}%"


class Sink:
    """An output stream that the supervisor writes without ever blocking on a slow reader.

    A pipe, terminal or socket is written only as far as it takes now (chunks of PIPE_BUF
    bytes, each written only when poll says there is room, so that a blocking descriptor
    never blocks); the rest waits here, and the supervisor pumps it when the descriptor is
    writable. A regular file, or a stream without a descriptor, is written directly.
    """

    def __init__(self, stream):
        self.stream = stream
        self.name = getattr(stream, "name", None)
        self.queue = collections.deque()
        self.pending = 0  # bytes waiting
        self.fd = None
        try:
            fd = stream.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode) and _pollable(fd):
                stream.flush()  # whatever its buffer holds goes first
                self.fd = fd
                self.poll = select.poll()
                self.poll.register(fd, select.POLLOUT)
        except (OSError, ValueError, AttributeError):
            pass

    def write(self, data):
        if self.fd is None:
            self.stream.write(data)
            return
        self.queue.append(data)
        self.pending += len(data)

    def flush(self):
        """Write what the stream takes now; raises what the write raises (EPIPE, ENOSPC, ...)."""
        if self.fd is None:
            self.stream.flush()
            return
        while self.queue and self.poll.poll(0):
            if len(self.queue) > 1:  # many small pieces: one write, not one a piece
                joined = b"".join(self.queue)
                self.queue.clear()
                self.queue.append(joined)
            chunk = self.queue[0]
            n = os.write(self.fd, chunk[:select.PIPE_BUF])
            self.pending -= n
            if n == len(chunk):
                self.queue.popleft()
            else:
                self.queue[0] = chunk[n:]

    def drop(self):
        """Forget what waits (the reader will not take it); returns how many bytes that was."""
        n, self.pending = self.pending, 0
        self.queue.clear()
        return n


def _pollable(fd):
    """Whether epoll can watch ``fd`` (pipes, terminals, sockets can; /dev/null and files cannot)."""
    ep = select.epoll()
    try:
        ep.register(fd, select.EPOLLOUT)
        return True
    except OSError:
        return False
    finally:
        ep.close()


class TextStream:
    """A text stream (``io.StringIO``, a notebook's) given where job output goes: the bytes of the
    jobs are written to it decoded as UTF-8, bytes that are not UTF-8 replaced."""

    def __init__(self, stream):
        self.stream = stream
        self.name = getattr(stream, "name", None)

    def write(self, data):
        self.stream.write(data.decode("utf-8", "replace"))

    def flush(self):
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()


def byte_stream(stream):
    """Where job output goes, as a stream of bytes: a binary stream as it is, the binary buffer
    under a text stream that has one (sys.stdout), else a TextStream; TypeError for an object
    that takes neither bytes nor text, found before anything runs (an empty write, a no-op).

    A stream that takes them but cannot write (a full device, a closed pipe) is taken as it is: its
    failure is met when output comes, as any write that fails mid-run is (one line; the run's
    records are written).
    """
    buffer = getattr(stream, "buffer", None)
    if isinstance(stream, io.TextIOBase) and buffer is not None:
        try:
            stream.flush()  # what its text layer holds goes first
        except OSError:
            pass
        return buffer
    try:
        stream.write(b"")
        return stream
    except TypeError:
        pass
    except OSError:
        return stream
    try:
        stream.write("")
    except TypeError:
        raise TypeError(f"{type(stream).__name__} takes neither bytes nor text: give a binary or text stream, "
                        "None or False") from None
    except OSError:
        pass
    return TextStream(stream)


# Merged output: while one job's line, sent on in pieces, is not ended, other jobs' output for
# that stream waits, up to this much in memory; past it, in a temporary file (Waiting).
PARKED_MAX = 4 * 1024 * 1024


class Waiting:
    """Other jobs' output for a stream, waiting for an open line there to end, in order: in memory
    up to ``limit`` bytes, the rest in an unnamed temporary file. Memory stays bounded and no job's
    bytes are changed (a line is never broken to let others go)."""

    _HEAD = struct.Struct("<iQ")  # a record in the file: the job's number, its length, then the bytes

    def __init__(self, limit=PARKED_MAX):
        self.limit = limit
        self.items = []
        self.bytes = 0
        self.file = None

    def __bool__(self):
        return bool(self.items) or self.file is not None

    def add(self, seq, data):
        if self.file is None and self.bytes + len(data) > self.limit:
            try:
                self.file = tempfile.TemporaryFile(prefix="clstr-out-")
            except OSError:
                pass  # nowhere to put it: memory, rather than a job's line broken
        if self.file is None:
            self.items.append((seq, data))
            self.bytes += len(data)
        else:
            self.file.write(self._HEAD.pack(seq, len(data)))
            self.file.write(data)

    def drain(self):
        """What waited, in order, a piece at a time (what comes from the file is read as it goes)."""
        items, f = self.items, self.file
        self.items, self.bytes, self.file = [], 0, None
        yield from items
        if f is None:
            return
        with f:
            f.seek(0)
            while True:
                head = f.read(self._HEAD.size)
                if not head:
                    return
                seq, size = self._HEAD.unpack(head)
                yield seq, f.read(size)


TAIL_BYTES = 2048  # of a running attempt's stderr, kept to say why it failed (--json, the report)
TAIL_LINES = 5  # ... of which an attempt that did not succeed keeps its last lines
TAIL_WIDTH = 240  # ... each cut to this many characters


class Tails:
    """The last bytes each running attempt wrote to stderr: bounded (TAIL_BYTES an attempt, only
    while it runs), whatever the output's destination (the terminal, --output-dir, a library's None)."""

    def __init__(self):
        self.tails = {}  # seq -> bytearray

    def start(self, seq):
        self.tails.pop(seq, None)

    def add(self, seq, data):
        tail = self.tails.get(seq)
        if tail is None:
            tail = self.tails[seq] = bytearray()
        tail += data[-TAIL_BYTES:]
        if len(tail) > TAIL_BYTES:
            del tail[:len(tail) - TAIL_BYTES]

    def take(self, seq):
        """The attempt's last stderr lines as text (None if it wrote none), and forget them."""
        tail = self.tails.pop(seq, None)
        if not tail:
            return None
        lines = [line.rstrip() for line in bytes(tail).decode("utf-8", "replace").splitlines()]
        lines = [cut(line, TAIL_WIDTH) for line in lines if line.strip()]
        return "\n".join(lines[-TAIL_LINES:]) or None


# Job output a slow reader has not taken yet waits in memory up to this much; past it the
# supervisor reads no more from its slots (and starts no job) until the reader catches up.
OUTPUT_HIGH = 32 * 1024 * 1024


class Backlog:
    """Job output a slow reader holds up: the descriptors with output waiting are watched (in the
    loop's selector ``sel``) for room, ``pump()`` writing more when there is."""

    def __init__(self, printer, sel, pump):
        self.printer = printer
        self.sel = sel
        self.pump = pump
        self.fds = set()  # descriptors registered for writability

    def sync(self):
        """Watch what waits now; whether more than OUTPUT_HIGH waits (the slots should pause)."""
        waiting = self.printer.waiting()
        for fd in self.fds - set(waiting):
            self.sel.unregister(fd)
            self.fds.discard(fd)
        for fd in set(waiting) - self.fds:
            self.sel.register(fd, selectors.EVENT_WRITE, self.pump)
            self.fds.add(fd)
        return sum(waiting.values()) > OUTPUT_HIGH

    def drain(self, stop, clock, log, sync):
        """At the end: wait until the readers took all job output; a signal (``stop``: the run's
        stopping.Stopping) gives them INTERRUPT_GRACE more, then what is left is dropped, said."""
        from .stopping import INTERRUPT_GRACE
        deadline = clock() + INTERRUPT_GRACE if stop.signal is not None else None
        while self.printer.waiting():
            if deadline is not None and clock() >= deadline:
                n = self.printer.drop_waiting()
                log(f"{n} bytes of job output were not written: their reader did not take them")
                break
            sync()
            for key, _ in self.sel.select(min(0.5, deadline - clock()) if deadline else 0.5):
                key.data()  # output a reader took, or the signal wake-up: the workers are gone by now
            if stop.signals and deadline is None:
                deadline = clock() + INTERRUPT_GRACE
                fatal = [sig for sig in stop.signals if sig != signal.SIGUSR1]
                if fatal and stop.signal is None:
                    stop.signal = fatal[0]  # every job had ended; the wait for the reader was cut short
        for fd in self.fds:
            self.sel.unregister(fd)
        self.fds.clear()


class Printer:
    """Writes job output: merged line by line (default), tagged, grouped per job, or gathered.

    Output comes in whole lines, but for a line too long to hold, which comes in pieces: the
    stream is then the job's until its line ends, so that two jobs' output never shares a line.
    """

    def __init__(self, out, err, tag=False, tag_job=False, group=False, output_dir=None, gather=False,
                 status=None):
        self.streams = {1: Sink(out) if out is not None else None, 2: Sink(err) if err is not None else None}
        self.gather = gather
        self.gathered = {}  # seq -> (node, bytearray) of stdout with --gather
        self.tag = tag
        self.tag_job = tag_job
        self.group = group
        self.output_dir = output_dir
        self.status = status
        self.held = collections.defaultdict(list)  # seq -> [(stream, data)] with --group
        self.running = set()  # jobs whose attempt runs: late output of an ended one is not held
        self.files = {}
        self.dirty = set()
        self.stdout_closed = False
        self.midline = set()  # (seq, stream) whose last output did not end its line
        self.owner = {}  # stream -> the job whose line, come in pieces, is open there
        self.parked = {1: Waiting(), 2: Waiting()}  # other jobs' output waiting for that line to end
        self.made = set()  # --output-dir with {host}: the nodes' directories made
        self.tails = Tails()  # each running attempt's last stderr: why one failed, in --json

    def _prefix(self, node, seq):
        parts = []
        if self.tag_job:
            parts.append(str(seq))
        if self.tag or self.gather:  # gathered stdout is folded; stderr lines say their node
            parts.append(node)
        return (": ".join(parts) + ": ").encode() if parts else b""

    def _prefixed(self, prefix, seq, stream, data):
        """``data`` with ``prefix`` at the start of each line (not where a line goes on)."""
        lines = data.splitlines(keepends=True)
        key = (seq, stream)
        out = b"".join((line if i == 0 and key in self.midline else prefix + line) for i, line in enumerate(lines))
        if data.endswith(b"\n"):
            self.midline.discard(key)
        else:
            self.midline.add(key)
        return out

    def _dir(self, node):
        """--output-dir, its {host} the node's name (that directory made as needed)."""
        if "{host}" not in self.output_dir:
            return self.output_dir
        path = self.output_dir.replace("{host}", as_file_name(node))
        if path not in self.made:
            os.makedirs(path, exist_ok=True)
            self.made.add(path)
        return path

    def output(self, node, seq, stream, data):
        if stream == 2:
            self.tails.add(seq, data)
        if self.output_dir is not None:
            f = self.files.get((seq, stream))
            if f is None:
                ext = "out" if stream == 1 else "err"
                path = os.path.join(self._dir(node), f"{seq}.{ext}")
                fd = open_for_us(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                f = self.files[(seq, stream)] = os.fdopen(fd, "ab")
            f.write(data)
            return
        if self.gather and stream == 1:
            self.gathered.setdefault(seq, (node, bytearray()))[1].extend(data)
            return
        prefix = self._prefix(node, seq)
        if prefix:
            data = self._prefixed(prefix, seq, stream, data)
        if self.group and seq in self.running:
            self.held[seq].append((stream, data))
            return
        self._merged(seq, stream, data)

    def _merged(self, seq, stream, data):
        """Write a job's output to the merged stream, keeping a line that comes in pieces whole."""
        owner = self.owner.get(stream)
        if owner is not None and owner != seq:
            self.parked[stream].add(seq, data)
            return
        self._write(stream, data)
        if data.endswith(b"\n"):
            if owner is not None:
                del self.owner[stream]
                self._unpark(stream)
        else:
            self.owner[stream] = seq

    def _end_line(self, stream):
        """End the open line of ``stream`` (its job ended, or others waited too long) and let the rest go."""
        if self.owner.pop(stream, None) is not None:
            self._write(stream, b"\n")
            self._unpark(stream)

    def _unpark(self, stream):
        """The stream's open line ended: what waited goes, in order (a job of it may open another)."""
        parked, self.parked[stream] = self.parked[stream], Waiting()
        for seq, data in parked.drain():
            self._merged(seq, stream, data)

    def _write(self, stream, data):
        dest = self.streams[stream]
        if dest is None:
            return
        if self.status is not None:
            self.status.clear()
        try:
            dest.write(data)
        except OSError as e:
            self._failed(stream, e)
            return
        self.dirty.add(stream)

    def _failed(self, stream, error):
        """A write to stdout or stderr failed: a reader gone, or a real error (a full disk) that is raised."""
        if isinstance(error, BrokenPipeError) or stream == 2:
            self._gone(stream)  # a lost stderr only silences it; a lost stdout stops the run
            return
        if error.filename is None:
            error.filename = getattr(self.streams[stream], "name", None) or ("stdout" if stream == 1 else "stderr")
        self.streams[stream] = None
        raise error

    def _gone(self, stream):
        """The reader of a stream went away (``clstr ... | head``): write no more there."""
        if self.streams[stream] is not None:
            silence(self.streams[stream].stream)
        self.streams[stream] = None
        self.dirty.discard(stream)
        if stream == 1:
            self.stdout_closed = True

    def attempt_started(self, seq, node=""):
        """An attempt starts on ``node``: with --output-dir, its job's files start afresh (in the
        node's directory, with {host})."""
        self.running.add(seq)
        self.tails.start(seq)
        if self.output_dir is None:
            return
        where = self._dir(node)
        for ext in ("out", "err"):
            os.close(open_for_us(os.path.join(where, f"{seq}.{ext}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC))

    def attempt_ended(self, seq):
        """An attempt ended: grouped output is printed whole, per-job files closed, a line it left
        open (its worker died mid-line) ended."""
        self.running.discard(seq)
        for stream in (1, 2):
            if self.owner.get(stream) == seq:
                self._end_line(stream)
            if (seq, stream) in self.midline:
                self.midline.discard((seq, stream))
        for stream, data in self.held.pop(seq, ()):
            self._merged(seq, stream, data)
        for stream in (1, 2):
            f = self.files.pop((seq, stream), None)
            if f is not None:
                f.close()

    def flush(self):
        dirty, self.dirty = self.dirty, set()
        for stream in dirty:
            try:
                self.streams[stream].flush()
            except OSError as e:
                self._failed(stream, e)
        if self.status is not None and self.status.tty and not self.status.shown and self.status.line:
            self.status.draw()

    def close(self):
        for f in self.files.values():
            f.close()
        self.files.clear()
        if self.gather:
            self._write_gathered()
            self.flush()

    def waiting(self):
        """{descriptor: bytes waiting} of the streams whose reader has not taken everything yet."""
        return {sink.fd: sink.pending for sink in self.streams.values() if sink is not None and sink.pending}

    def pump(self):
        """Write what waits, as far as the streams take it now (the loop calls this when one is writable)."""
        for stream, sink in self.streams.items():
            if sink is not None and sink.pending:
                self.dirty.add(stream)
        self.flush()

    def drop_waiting(self):
        """Give up on what the readers have not taken; returns the bytes dropped."""
        return sum(sink.drop() for sink in self.streams.values() if sink is not None)

    def _write_gathered(self):
        """Identical outputs once, under the folded list of their nodes (like clush -b)."""
        groups = {}
        for node, data in self.gathered.values():
            groups.setdefault(bytes(data), []).append(node)
        self.gathered.clear()
        ordered = sorted(((sorted(nodes, key=hostlist.natural), data) for data, nodes in groups.items()),
                         key=lambda group: hostlist.natural(group[0][0]))
        for nodes, data in ordered:
            head = f"{hostlist.fold(nodes)} ({len(nodes)})"
            rule = "-" * 15
            self._write(1, f"{rule}\n{head}\n{rule}\n".encode() + data)


def silence(stream):
    """Point a stream whose reader left at /dev/null, so that no later write or exit flush fails."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


def open_for_us(path, flags, mode=0o666):
    """``os.open`` that follows no symlink planted in a directory other users can write.

    In such a directory (``/tmp``, a shared scratch) another user could have put a link to a
    file of ours in the path's place: there the path is opened with O_NOFOLLOW, and a file
    that exists must be our own. In a directory only we can write, a link is ours and followed.
    """
    d = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(d)
    except OSError:
        st = None
    if st is not None and st.st_mode & 0o022:
        flags |= os.O_NOFOLLOW
        fd = os.open(path, flags, mode)
        if os.fstat(fd).st_uid != os.getuid():
            os.close(fd)
            raise PermissionError(1, "not our file, in a directory others can write", path)
        return fd
    return os.open(path, flags, mode)


def check_file_target(path, what):
    """Before the run: ``path`` can be written as a file replaced atomically (its directory exists,
    takes new files, and it is no directory)."""
    d = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"{what} is a directory", path)
    if not os.path.isdir(d):
        raise InputError(f"{what}: no such directory {d}", path)
    if not os.access(d, os.W_OK | os.X_OK):
        raise InputError(f"{what}: directory {d} is not writable", path)
    # it is replaced atomically (a new file beside it, renamed): one is made and removed now, so
    # that a directory no file can be made in (a pseudo file system, a full disk) stops the run
    # before it starts rather than after
    try:
        fd, tmp = tempfile.mkstemp(prefix=".clstr-check-", dir=d)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError(f"{what}: cannot make a file in {d} ({e.strerror})", path) from None


def check_output_dir(path, seqs):
    """Before the run: make ``path`` if needed and check that every job's files can be made in it
    (with {host}, the directory above the nodes' own, made as their jobs start)."""
    if "{host}" in path:
        path, seqs = os.path.dirname(path.split("{host}", 1)[0] + "x") or ".", ()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create output directory: {e.strerror}", path) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError("output directory is not writable", path)
    st = os.stat(path)
    if st.st_mode & 0o022 and not st.st_mode & 0o1000:
        # another user could replace a job's file with a link to any file of ours
        raise InputError("output directory can be written by other users and is not sticky: "
                         "use a directory of your own", path)
    names = set(os.listdir(path))
    for seq in seqs:
        for ext in ("out", "err"):
            name = f"{seq}.{ext}"
            if name in names and os.path.isdir(os.path.join(path, name)):
                raise InputError(f"{name} is a directory: job {seq}'s output cannot go there", path)


def replace_file(path, text, prefix):
    """Replace ``path`` atomically with ``text``: a reader sees the old file or the new, never a part."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_active(path, running):
    """Replace the active-nodes file atomically: one ``node: <'Job' 'command'>`` line per job."""
    replace_file(path, "".join(f"{node}: <'Job' {cmd!r}>\n" for node, cmd in running), ".clstr-active-")


def write_state(path, snapshot):
    """Replace the --state file atomically with the run's snapshot (a dict), as JSON."""
    replace_file(path, json.dumps(snapshot, indent=1) + "\n", ".clstr-state-")
