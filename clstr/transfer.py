"""Files to the node and back (--transferfile, --return, --basefile, --workdir, --cleanup).

What travels is planned here, pure (``Plan``, ``remote_path``, ``workdir``); how it travels is
``FileSession``: one ssh session a slot, beside the job loop, over the node's shared connection
where there is one (no key exchange a job), running clstr/remote/files.sh. Nothing else writes
to that session, so its stream carries the bytes as they are: a file goes down stdin after its
request line, and comes back after an answer that gives its size. Files are streamed in pieces,
never held whole (1 GB passes in a few MB of memory). A file brought back is written to a
temporary name beside its place, renamed into it only when the attempt is taken as the job's
result (never half written; of two attempts of a job only one writes).

Why this and not rsync (GNU parallel's choice): rsync costs, for each file, a client process here,
its ssh, and a server process on the node, with a handshake of its own (measured: see
bench/README.md); this session costs two small processes on the node a file (head and cat, or
ls and head) and nothing here. rsync's gain, sending only what changed of a file already there,
is no gain for the inputs and results of jobs, which are new each time.
"""
import dataclasses
import errno
import itertools
import os
import re
import selectors
import shutil
import stat
import sys
import time
from dataclasses import dataclass, field

from . import ssh, transports
from .errors import InputError
from .proc import PIPE, Child, end_group
from .events import FileNamed
from .result import Ending

CHUNK = 1 << 20  # bytes of a file sent at a time (a gateway's put frames)
# bytes read from the session at a time: a pipe holds 64 KiB, and a read of more asks malloc for
# an mmap that is faulted in, then unmapped (measured: most of a return's system time)
READ_SIZE = 1 << 16
SPLICE_MAX = 1 << 20  # bytes a splice may move at once (the pipe gives what it holds)
_SPLICE = hasattr(os, "splice")  # Linux, Python 3.10 on
_SENDFILE = sys.platform.startswith("linux")  # a file to a pipe by sendfile: Linux 2.6.33 on


def _no_sendfile():
    global _SENDFILE
    _SENDFILE = False
REPLY_MAX = 4096  # the longest answer line
PARTIAL = ".clstr-part-"  # the temporary name of a file coming back, beside its place
CLEANUP_WAIT = 10.0  # --cleanup at the end: how long the nodes get to remove the run's files
HOME_RUN_DIR = ".clstr/work"  # --workdir ...: a directory of the run under it, below the home


class TransferError(Exception):
    """A file could not be sent or brought back: the words name the file and the cause; ``lost``: the
    connection (or the session) was lost, the node's doing, not the job's; ``here``: it failed on
    this machine (no space or no way to write the file here), or the job changed the file while it
    moved: the job's failure, never its node's."""

    def __init__(self, why, lost=False, here=False, file=None):
        super().__init__(why if file is None else file.render(file.path))
        self.lost = lost
        self.here = here
        self.file = file  # events.FileNamed: the file the words name, as data


def file_error(side, path, what, there=False, here=True):
    """The TransferError of a file of ``side`` ("send", "basefile", "return") at ``path`` here:
    "side: path<what>[ on this machine]" (see events.FileNamed)."""
    return TransferError(None, here=here, file=FileNamed(side, what, there, path))


MARK_PREFIX = ".clstr-mark-"  # then the run's token: what the run's end sweeps (unmark)
MARK_NAME = re.compile("-|" + re.escape(MARK_PREFIX) + "[0-9A-Za-z_-]{1,128}")  # a mark's name (from a frame)


def unmark(files, job_files, run):
    """Remove the marks of run ``run`` left beside its files here (a worker killed before it
    removed its own): looked for in the directories of the run's files, nothing broader."""
    dirs = {os.path.dirname(b.local) for b in (files.basefiles if files else ())}
    for jf in job_files.values():
        dirs.update(os.path.dirname(p.local) for p in jf.sends + jf.returns)
    prefix = f"{MARK_PREFIX}{run}-"
    for d in {os.path.abspath(d) for d in dirs}:  # a few directories, however many jobs
        try:
            names = [n for n in os.listdir(d) if n.startswith(prefix)]
        except OSError:
            continue
        for n in names:
            _unlink(os.path.join(d, n))


class Mark:
    """A file clstr makes beside a path here for one request, named in it, so that the node can tell
    whether it sees this machine's filesystem there (NFS homes, this machine in the node list):
    where the node finds the mark beside the path, its path is this very file.

    ``name``: the mark's name (bytes), ``b"-"`` where none could be made (the directory is missing
    here, or not ours to write: then it cannot be the place the node writes either). Used as a
    context manager, or closed by whoever reads the answer. ``run``: the run's token, in its name
    (the run's end sweeps what a killed worker left, ``unmark``); ``given``: the name of one made by
    another process (the root's, for a gateway's request), not ours to remove.
    """

    _made = itertools.count()

    def __init__(self, local, run, given=None):
        self.path = None
        self.name = b"-" if given is None else given.encode()
        if local is None or given is not None:
            return
        d = os.path.dirname(os.path.abspath(local))
        name = f"{MARK_PREFIX}{run}-{os.getpid()}-{next(self._made)}-{os.urandom(4).hex()}"
        try:
            os.close(os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        except OSError:
            return
        self.path = os.path.join(d, name)
        self.name = name.encode()

    def close(self):
        if self.path is not None:
            _unlink(self.path)
            self.path = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def oserror_words(e):
    """An OSError in a few words, its machine not said: "no space left"."""
    if e.errno == errno.ENOSPC:
        return "no space left"
    if e.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return (e.strerror or str(e)).lower()


def here_error(e):
    """An OSError of this machine's, in words that say so: "no space left on this machine"."""
    return oserror_words(e) + " on this machine"


@dataclass(frozen=True)
class Send:
    local: str  # the path here (as the template made it)
    remote: str  # the path on the node (relative: to the work directory)
    stamp: tuple = None  # a basefile's (size, mtime ns) when the run began: every node gets that version
    mark: str = None  # the name of a Mark made beside the file on the root (through a gateway)


def check_stamp(local, st, stamp):
    """TransferError where a basefile is no longer the version the run began with (``stamp``)."""
    if stamp is not None and (st.st_size, st.st_mtime_ns) != stamp:
        raise TransferError(f"--basefile {local}: it changed during the run, and every node gets the version "
                            "the run began with: not sent", here=True)


@dataclass(frozen=True)
class Return:
    remote: str
    local: str
    mark: str = None  # as Send's


@dataclass(frozen=True)
class Files:
    """What a run's transfers share: the work directory on the nodes (None: the home), whether to
    clean up, and the basefiles sent to each node before its first job."""

    workdir: str = None
    cleanup: bool = False
    basefiles: tuple = ()  # Sends
    fresh_workdir: bool = False  # --workdir ...: a directory of the run's own, removed with --cleanup
    only: bool = False  # --copy/--rcopy: an attempt moves its files and runs nothing (no job session)
    # --copy by rsync: ((paths here, the directory there), ...) as the user gave them (rsync reads a
    # trailing slash as clush does); rsync_argv makes its command lines
    copy: tuple = ()
    copy_bytes: int = 0  # what --copy sends to each node, counted once when the run is planned
    preserve: bool = False  # --preserve: --copy/--rcopy keep each file's modification time and mode


@dataclass(frozen=True)
class JobFiles:
    """One job's transfers."""

    sends: tuple = ()
    returns: tuple = field(default=())


def remote_path(path):
    """Where ``path`` (a --transferfile or --return path here) goes on the node, GNU parallel's rule:
    after a ``/./`` the rest is relative to the work directory; else a relative path is relative to
    it and an absolute one is the same path there."""
    if "/./" in path:
        return path.split("/./", 1)[1]
    if path.startswith("./"):
        return path[2:]
    return path


def workdir(text, run_id, cwd=None, home=None):
    """The work directory on the nodes that --workdir ``text`` asks for: ``...`` a fresh one of the
    run (relative to the home), ``.`` the same path relative to the home as here, else as given."""
    if text == "...":
        return f"{HOME_RUN_DIR}/{run_id}"
    if text == ".":
        cwd = cwd or os.getcwd()
        home = home or os.path.expanduser("~")
        rel = os.path.relpath(cwd, home)
        return cwd if rel.startswith("..") else ("." if rel == "." else rel)
    return text


def check_path(path, what):
    """A transfer path: no line break (no request could carry it) and no ``..`` (a value cannot lead
    a file outside its place)."""
    if not path:
        raise InputError(f"{what}: an empty path")
    if "\n" in path or "\r" in path:
        raise InputError(f"{what} {path!r}: a path with a line break cannot be sent")
    if ".." in path.split("/"):
        raise InputError(f"{what} {path!r}: a path with '..' is refused (it could lead outside its place)")
    return path


def in_workdir(path, files):
    """The remote path as the file session takes it: relative ones under the work directory."""
    if path.startswith("/") or not files.workdir or files.workdir == ".":
        return path
    return f"{files.workdir.rstrip('/')}/{path}"


class FileSession:
    """The slot's file session: an ssh running files.sh, and our ends of its pipes.

    ``argv``: the ssh command that runs it; ``token``: the run's mark token its answers carry;
    ``stall``: the longest it may go without a byte moving before it is taken for lost.
    """

    def __init__(self, argv, env, token, stall):
        self.child = Child(argv, env, PIPE, PIPE, PIPE)
        self.stdin, self.stdout, self.stderr = self.child.fds[0], self.child.fds[1], self.child.fds[2]
        for fd in (self.stdin, self.stdout, self.stderr):
            os.set_blocking(fd, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.stdout, selectors.EVENT_READ, "out")
        self.sel.register(self.stderr, selectors.EVENT_READ, "err")
        self.token = token.encode()
        self.run = token  # in the names of its marks
        self.stall = stall
        self.buf = bytearray()
        self.err = bytearray()  # the last of ssh's stderr: why a session failed
        self.eof = False
        self.writing = False
        self.owed = []  # requests sent whose answers are not read yet (read before the next one's)
        self.line(ready=True)

    @property
    def pid(self):
        return self.child.pid

    # ---- the stream ----------------------------------------------------
    def _wait(self, want_write, take_out=True):
        """Wait until the session can take bytes (or has some); TransferError once it stalls or ends.
        ``take_out``: what stdout has is read into ``buf``; else whether it has some is returned
        (for ``_into``, which reads it itself)."""
        if want_write and not self.writing:
            self.sel.register(self.stdin, selectors.EVENT_WRITE, "in")
            self.writing = True
        elif not want_write and self.writing:
            self.sel.unregister(self.stdin)
            self.writing = False
        ready = self.sel.select(self.stall)
        if not ready:
            raise TransferError("the file session stalled: nothing moved for {:g} s".format(self.stall), lost=True)
        can_write = False
        for key, _ in ready:
            if key.data == "in":
                can_write = True
            elif key.data == "err":
                data = os.read(self.stderr, 65536)
                if not data:
                    self.sel.unregister(self.stderr)
                self.err = (self.err + data)[-4096:]
            elif not take_out:
                return True
            else:
                data = os.read(self.stdout, READ_SIZE)
                if not data:
                    self.eof = True
                    raise TransferError(self._why_lost(), lost=True)
                self.buf += data
        return can_write

    def _why_lost(self):
        reason, _ = ssh.classify(bytes(self.err))
        return reason or "connection lost"

    def _write(self, data):
        view = memoryview(data)
        while view:
            if self._wait(True):
                try:
                    n = os.write(self.stdin, view)
                except BlockingIOError:
                    continue
                except OSError:
                    raise TransferError(self._why_lost(), lost=True) from None
                view = view[n:]

    def line(self, ready=False):
        """The next answer: ("k", ""), ("n", why) or ("f", size); what comes before the ready mark is
        the login's, not ours."""
        while True:
            at = self.buf.find(b"\n")
            if at >= 0:
                raw = bytes(self.buf[:at])
                del self.buf[:at + 1]
                if raw.startswith(self.token + b":"):
                    kind, _, rest = raw[len(self.token) + 1:].decode("utf-8", "replace").partition(" ")
                    if ready:
                        if kind == "r":
                            return None
                        continue
                    return kind, rest
                if not ready:
                    raise TransferError("the file session said something else: " + raw[:80].decode("utf-8", "replace"))
                continue
            if len(self.buf) > REPLY_MAX and not ready:
                raise TransferError("the file session's answer is too long")
            self._wait(False)

    def reply(self):
        """The answer to the last request, after those owed to the ones before it (checked)."""
        while self.owed:
            what, marks = self.owed.pop(0)
            try:
                kind, why = self.line()
            finally:
                for m in marks:
                    m.close()
            if kind != "k":
                raise TransferError(f"{what}: {why}")
        return self.line()

    def _answer(self, what):
        kind, why = self.reply()
        if kind != "k":
            raise TransferError(f"{what}: {why}")

    # ---- requests ------------------------------------------------------
    def _from_file(self, f, size):
        """Write the next ``size`` bytes of the open file ``f`` down the session, moved by the kernel
        where it can (sendfile: no copy here); False if the file ended before them."""
        left = size
        scratch = None
        while left:
            if not self._wait(True):
                continue
            try:
                if _SENDFILE:
                    n = os.sendfile(self.stdin, f.fileno(), None, min(left, SPLICE_MAX))
                else:
                    if scratch is None:
                        scratch = memoryview(bytearray(READ_SIZE))
                    got = f.readinto(scratch[:min(left, READ_SIZE)])
                    if not got:
                        return False
                    self._write(scratch[:got])
                    n = got
            except BlockingIOError:
                continue
            except OSError as e:
                if _SENDFILE and e.errno in (errno.EINVAL, errno.ENOSYS):
                    _no_sendfile()  # this kernel sends no file to a pipe: read and write instead
                    continue
                if e.errno in (errno.EPIPE, errno.EBADF):
                    raise TransferError(self._why_lost(), lost=True) from None
                raise  # the file here cannot be read (the caller names it)
            if not n:
                return False
            left -= n
        return True

    def mkdirs(self, paths):
        self._write(b"d %d\n" % len(paths) + b"".join(_path(p) for p in paths))
        self._answer("mkdir " + paths[0])

    def send(self, local, remote, base=False, hold=False, stamp=None, mark=None, preserve=False):
        """Send the file ``local`` to ``remote``, its permission bits with it (the node's umask
        applied, as rsync without -p does); returns its size. TransferError naming the file.

        The node writes a temporary name and renames it into place; where ``remote`` is the file
        ``local`` itself (a filesystem the node shares with this machine: see ``Mark``) it drops
        the bytes and leaves the file as it is. ``hold``: the node keeps a hold on what it placed,
        which its removal (``remove``, ``later``) asks for. ``stamp``: a basefile's, checked;
        ``mark``: the name of the Mark made for it elsewhere (the root's), if any.
        """
        try:
            f = open(local, "rb")
        except OSError as e:
            raise file_error("basefile" if base else "send", local, ": " + oserror_words(e), there=True) from None
        with f, Mark(local, self.run, mark) as mark:
            st = os.fstat(f.fileno())
            check_stamp(local, st, stamp)
            size = st.st_size
            # --preserve: its time (as touch -t reads it, in UTC) and its mode as it is, no umask
            when = time.strftime("%Y%m%d%H%M.%S", time.gmtime(st.st_mtime)).encode() if preserve else b"-"
            self._write(b"%s %d %o %s %s %s\n" % (b"b" if base else b"s", size, st.st_mode & 0o777, mark.name,
                                                   b"h" if hold else b"-", when) + _path(remote))
            try:
                whole = self._from_file(f, size)
            except OSError as e:
                raise file_error("basefile" if base else "send", local, ": " + oserror_words(e), there=True) from None
            if not whole:  # it shrank while it was read: the stream is out of step
                raise file_error("basefile" if base else "send", local, ": it changed while it was sent")
            self._write(b"e\n")
            self._answer(f"send: {local}")
        return size

    def fetch(self, remote, local, node, mark=None, preserve=False):
        """Bring ``remote`` back into a temporary file beside ``local``; returns (its path, size), or
        None where ``remote`` is the file ``local`` itself (a shared filesystem: it is home already).

        A file that changed while it was read (a job's background process writing it) fails the
        attempt at once, the stream still in step; a write that fails here names the file and this
        machine (``here``: not the node's doing).
        """
        with Mark(local, self.run, mark) as mark:
            self._write(b"r %s\n" % mark.name + _path(remote))
            kind, rest = self.reply()
        if kind == "h":
            return None
        if kind != "f":
            raise TransferError(f"return: {remote}: {rest or kind} on {node}")
        size, mode = answer_of_fetch(rest)
        mtime = answer_mtime(rest) if preserve else None
        try:
            fd, tmp = open_partial(local, mode)
        except TransferError:
            self._skip(size)
            self.line()
            raise
        try:
            failed = self._into(fd, size)
            kind, rest = self.line()
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        if failed is None and preserve:
            failed = _preserved(fd, mode, mtime)
        os.close(fd)
        if failed is not None or kind != "k":
            _unlink(tmp)
            if failed is not None:
                raise file_error("return", local, ": " + oserror_words(failed), there=True)
            if rest == "changed":
                raise file_error("return", local, " changed while it was brought back")
            raise TransferError(f"return: {remote}: {rest or kind} on {node}")
        return tmp, size

    def _skip(self, size):
        self._into(None, size)

    def _into(self, fd, size):
        """The stream's next ``size`` bytes into the file ``fd`` (None: dropped), moved by the
        kernel where it can (splice: no copy here); the OSError of a write that failed, or None.
        After a failed write the rest is still read, so that the stream stays in step."""
        failed = None
        take = min(size, len(self.buf))  # what came with the answer's line
        if take:
            if fd is not None:
                try:
                    write_all(fd, self.buf[:take])
                except OSError as e:
                    failed = e
            del self.buf[:take]
            size -= take
        scratch = None
        while size:
            if not self._wait(False, take_out=False):
                continue
            try:
                if fd is not None and failed is None and _SPLICE:
                    n = os.splice(self.stdout, fd, min(size, SPLICE_MAX))
                else:
                    if scratch is None:
                        scratch = memoryview(bytearray(READ_SIZE))
                    n = os.readv(self.stdout, [scratch[:min(size, READ_SIZE)]])
                    if n and fd is not None and failed is None:
                        try:
                            write_all(fd, scratch[:n])
                        except OSError as e:
                            failed = e
            except BlockingIOError:
                continue
            except OSError as e:
                if fd is None or failed is not None or not _SPLICE or e.errno in (errno.EBADF, errno.EPIPE):
                    raise TransferError(self._why_lost(), lost=True) from None
                failed = e  # the file here could not take it (a full disk): the rest is read and dropped
                continue
            if not n:
                self.eof = True
                raise TransferError(self._why_lost(), lost=True)
            size -= n
        return failed

    def later(self, sends, returns):
        """Remove these on the node when the session ends, whatever way: ``sends`` (remote paths)
        where this session placed them, ``returns`` (Returns) but where the path is the file here.
        Its answer is read with the next request's (no wait of a round trip for it)."""
        self._cleanup(b"c", sends, returns, owed=True)

    def remove(self, sends, returns, fetched=()):
        """Remove these on the node now, as ``later`` says; ``fetched``: remote paths of returns
        brought back (not files here: they need no mark). Its answer is read with the next request's
        unless a mark waits for it."""
        self._cleanup(b"x", sends, returns, fetched=fetched)

    def _cleanup(self, kind, sends, returns, owed=False, fetched=()):
        if not (sends or returns):
            return
        marks = [Mark(None, self.run) if r.remote in fetched else Mark(r.local, self.run, r.mark) for r in returns]
        lines = [b"p" + _path(p) for p in sends] + [b"r%s/" % m.name + _path(r.remote) for m, r in zip(marks, returns)]
        self._write(b"%s %d\n" % (kind, len(lines)) + b"".join(lines))
        self.owed.append(("cleanup", marks))  # the marks are kept until the node answered
        if not owed and any(m.path for m in marks):
            self._answer("cleanup")

    def close(self, grace=1.0):
        """End the session: quit (what was to be removed is removed), then end its ssh."""
        try:
            if not self.eof:
                os.set_blocking(self.stdin, True)
                os.write(self.stdin, b"q\n")
        except OSError:
            pass
        if self.child.wait(grace) is None:
            end_group(self.child.pid, child=self.child)
        self.child.wait()
        self.release()
        self.sel.close()
        self.child.close()

    def release(self):
        """Remove the marks of requests whose answers were never read (the session is ending)."""
        for _, marks in self.owed:
            for m in marks:
                m.close()
        self.owed = []


def _path(p):
    return p.encode("utf-8", "surrogateescape") + b"\n"


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def partial_name(local, tag=""):
    """The temporary name beside ``local`` that a file coming back is written to before it takes
    its place (the run's end sweeps any left: PARTIAL)."""
    d = os.path.dirname(os.path.abspath(local)) or "."
    return os.path.join(d, f"{PARTIAL}{os.getpid()}-{tag}{os.path.basename(local)}")


def open_partial(local, mode, tag=""):
    """(fd, path) of a new temporary file beside ``local``, for a file coming back (``mode``: the
    node's, this process's umask applied); TransferError naming ``local`` if it cannot be made."""
    tmp = partial_name(local, tag)
    try:
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    except OSError as e:
        raise file_error("return", local, ": " + oserror_words(e), there=True) from None
    try:
        os.fchmod(fd, mode & ~UMASK)
    except OSError:
        pass
    return fd, tmp


def clean_nodes(cfg, groups, line, path_of, env, clock, wait=CLEANUP_WAIT):
    """--cleanup at the run's end: ``line`` on each (node, n) of ``groups``, over its shared
    connection where ``path_of(group)`` names one, all at once, within ``wait`` seconds (a node
    that does not answer keeps its files). The root runs it for the nodes it drives, a gateway
    for its own."""
    children = []
    for group in groups:
        try:
            reach = transports.of(cfg, group[0])
            children.append(Child(reach.argv(line, path_of(group) if reach.shares else None, cleanup=False), env,
                                  PIPE, PIPE, PIPE))
        except OSError:
            break
    deadline = clock() + wait
    for child in children:
        child.close()  # nothing to say or hear: their pipes close, they go on
    for child in children:
        if child.wait(max(0.0, deadline - clock())) is None:
            end_group(child.pid, grace=0)
            child.wait()


def for_node(files, node):
    """A job's JobFiles with the {host} of its paths the name of ``node``, where it starts."""
    from .templates import HOST_MARK, on_node
    if files is None or not any(HOST_MARK in p for f in files.sends + files.returns for p in (f.local, f.remote)):
        return files
    def there(f):  # a Send or a Return
        return dataclasses.replace(f, local=on_node(f.local, node), remote=on_node(f.remote, node))
    return JobFiles(tuple(map(there, files.sends)), tuple(map(there, files.returns)))


def placed(ev, succeeded, homes=None):
    """The attempt's end (an events.Finished) once the files it brought back took their places,
    which they do only for an attempt that ``succeeded`` (never half written; of two attempts of
    a job only one writes), before it is judged: one that cannot be placed fails the job, a
    failure here and not its node's (Ending.FILE_FAILED). ``homes``: {place here: the job that
    brought a file back there} of the run: a second job's file is refused there, never written
    over (two jobs' {host} names on one node)."""
    if not ev.returned:
        return ev
    left = list(ev.returned)
    failed = None if succeeded else ""
    while left and failed is None:
        tmp, local = left.pop(0)
        other = ev.seq if homes is None else homes.get(os.path.abspath(local), ev.seq)
        if other != ev.seq:
            failed = (f"return: {local}: job {other} brought a file back to this place in this run: not written "
                      "over (put {} or {#} in --return)")
            left.append((tmp, local))
            continue
        try:
            place(tmp, local)
            if homes is not None:
                homes[os.path.abspath(local)] = ev.seq
        except TransferError as e:
            failed = str(e)
        except OSError as e:
            failed = f"return: {local}: could not take its place: {here_error(e)}"
        if failed is not None:
            left.append((tmp, local))
    for tmp, _ in left:
        discard(tmp)
    if failed:
        return dataclasses.replace(ev, exit=255, ending=Ending.FILE_FAILED, reason=failed, returned=())
    return dataclasses.replace(ev, returned=())


def place(tmp, local):
    """A file brought back takes its place (the attempt was taken as the job's result); a directory
    brought back (--rcopy DIR) takes it, or is merged into the directory there, file by file."""
    try:
        st = os.lstat(local)
        if os.path.isdir(tmp) and stat.S_ISDIR(st.st_mode):
            _merge(tmp, local)
            return
        if stat.S_ISDIR(st.st_mode) or os.path.isdir(tmp):
            raise file_error("return", local, ": could not take its place: a "
                             + ("directory" if stat.S_ISDIR(st.st_mode) else "file") + " is there", there=True)
    except FileNotFoundError:
        pass
    os.replace(tmp, local)


def _merge(tmp, local):
    """The files of directory ``tmp`` into directory ``local`` (its own subdirectories made), each
    replacing what has its name there; then ``tmp`` goes."""
    for root, dirs, names in os.walk(tmp):
        there = os.path.join(local, os.path.relpath(root, tmp))
        os.makedirs(there, exist_ok=True)
        for n in names:
            if os.path.isdir(os.path.join(there, n)):
                raise file_error("return", os.path.join(there, n), ": could not take its place: a directory is there",
                                 there=True)
            os.replace(os.path.join(root, n), os.path.join(there, n))
    shutil.rmtree(tmp, ignore_errors=True)


def discard(tmp):
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        _unlink(tmp)


_LS_MODE = re.compile(r"-([r-])([w-])([xsS-])([r-])([w-])([xsS-])([r-])([w-])([xtT-])")


def answer_mtime(rest):
    """The modification time in a fetch's answer "SIZE MODE MTIME" (epoch seconds; None where the
    node could not tell it: ``-``, or an older answer without it)."""
    words = rest.split(" ")
    return int(words[2]) if len(words) > 2 and words[2].isdigit() else None


def _preserved(fd, mode, mtime):
    """--preserve: a file brought back gets the node's mode as it is and its time; the OSError if not."""
    try:
        os.fchmod(fd, mode)
        if mtime is not None:
            os.utime(fd, (mtime, mtime))
    except OSError as e:
        return e
    return None


def answer_of_fetch(rest):
    """(size, permission bits) of the node's answer to a fetch: "SIZE MODE", MODE as ls -l shows it
    (-rwxr-x---); bits it does not show are 0o644 (a plain file)."""
    size, _, shown = rest.partition(" ")
    shown = shown.partition(" ")[0]
    if not size.isdigit():
        raise TransferError(f"the node's file session answered {rest[:80]!r}", lost=True)
    m = _LS_MODE.match(shown)
    if not m:
        return int(size), 0o644
    mode = 0
    for bit, flag in zip(range(8, -1, -1), m.groups()):
        if flag not in "-ST":
            mode |= 1 << bit
    return int(size), mode


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()  # this process's, read once: files brought back get their mode with it applied


def stamp():
    return time.monotonic()


def copied(paths, dest):
    """(path here, path on the node) of every file --copy sends: a file to DEST/ITS_NAME, a directory
    DIR to DEST/DIR/... with its tree, ``DIR/`` its contents to DEST/... (as rsync and clush read a
    trailing slash); DEST by default the path's own directory (the same place there). InputError for a
    path that is missing here, or names nothing to send."""
    out = []
    for path in paths:
        check_path(path.rstrip("/") or "/", "--copy")
        base = dest if dest is not None else os.path.dirname(os.path.abspath(path.rstrip("/")))
        if os.path.isfile(path):
            out.append((path, os.path.join(base, os.path.basename(path))))
        elif os.path.isdir(path):
            top = base if path.endswith("/") else os.path.join(base, os.path.basename(path.rstrip("/")))
            found = []
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    here = os.path.join(root, name)
                    if os.path.isfile(here):
                        found.append((here, os.path.join(top, os.path.relpath(here, path))))
            if not found:
                raise InputError(f"--copy {path}: a directory with no file to send")
            out += found
        else:
            raise InputError(f"--copy {path}: no such file or directory here")
    return out


def plan(pairs, inputs, sends, returns, basefiles, wd, cleanup, run_token, pins=None):
    """The run's Files and each job's JobFiles ({seq: JobFiles}) from the options' templates.

    ``pairs``: (seq, command) of the jobs to run; ``inputs``: each job's input values by seq (or
    None: no ::: inputs, so templates hold no value); ``pins``: {seq: node} of the jobs pinned to a
    node (--on-each-node), whose {host} is known now; another job's {host} is filled in when it
    starts (``for_node``). A file to send that is missing here, a path with a line break or '..',
    and two jobs that would bring a file back to one place here are refused in one line before
    anything runs, where it can be known then.
    """
    from .templates import HOST_MARK, on_node, path as render
    pins = pins or {}
    if not (sends or returns or basefiles or wd or cleanup):
        return None, {}
    files = Files(workdir=workdir(wd, run_token) if wd else None, cleanup=cleanup,
                  fresh_workdir=wd == "...", basefiles=())
    bases = []
    for b in basefiles:
        check_path(b, "--basefile")
        if not os.path.isfile(b):
            raise InputError(f"--basefile {b}: no such file here")
        st = os.stat(b)
        bases.append(Send(b, in_workdir(remote_path(b), files), (st.st_size, st.st_mtime_ns)))
    files = Files(files.workdir, cleanup, tuple(bases), files.fresh_workdir)
    per_job = {}
    homes = {}  # where each return lands here -> the job that brings it back
    for seq, _ in pairs:
        values = (inputs or {}).get(seq, ())
        job_sends, job_returns = [], []
        node = pins.get(seq)
        for t in sends:
            local = check_path(render(t, values, seq), "--transferfile")
            local = on_node(local, node) if node is not None else local
            if HOST_MARK not in local and not os.path.isfile(local):
                raise InputError(f"--transferfile {local} (job {seq}): no such file here")
            job_sends.append(Send(local, in_workdir(remote_path(local), files)))
        for t in returns:
            text = check_path(render(t, values, seq), "--return")
            text = on_node(text, node) if node is not None else text
            local = os.path.normpath(text)
            # a name its node completes (known when it starts) is checked as it comes back (placed)
            other = homes.setdefault(os.path.abspath(local), seq) if HOST_MARK not in local else seq
            if other != seq:
                hint = "{host} or {#}" if node is not None else "{} or {#}"
                raise InputError(f"--return {t}: jobs {other} and {seq} would both bring it back to one place here "
                                 f"({local}); put {hint} in its name")
            job_returns.append(Return(in_workdir(remote_path(text), files), local))
        per_job[seq] = JobFiles(tuple(job_sends), tuple(job_returns))
    return files, per_job


# ---- --copy/--rcopy by rsync ------------------------------------------------------------
# Where this machine and a node both have rsync, copy and gather drive it (one rsync a direction
# and a node, over a connection of its own) instead of the file session: rsync's stream paces
# itself where a bare one makes sshd's buffers churn (W11, bench/README.md). A node without it
# falls back to the file session (RSYNC_MISSING).
RSYNC_MISSING = ("rsync: command not found", "rsync: not found", "rsync: No such file or directory")


def rsync_send_argv(rsync, rsh, host, sources, dest, preserve=False):
    """rsync's argv that sends ``sources`` (files and trees, a trailing slash a directory's
    contents) into the directory ``dest`` on ``host`` (made, with its parents): modes as the
    file session's (the node's umask applied), symbolic links followed, written whole or not."""
    return [rsync, "-rLspt" if preserve else "-rLs", "-e", rsh, "--rsync-path",
            f"mkdir -p -- {ssh.quote(dest)} && rsync", "--", *sources, f"{host}:{dest.rstrip('/') or '/'}/"]


def rsync_fetch_argv(rsync, rsh, host, remote, into, preserve=False):
    """rsync's argv that brings ``remote`` on ``host`` (a file, or a directory with all it holds)
    back into the directory ``into`` here, under its own name (each file written whole or not)."""
    return [rsync, "-rLspt" if preserve else "-rLs", "-e", rsh, "--", f"{host}:{remote.rstrip('/') or '/'}",
            into.rstrip("/") + "/"]


def size_of(path):
    """The bytes of a file, or of every file under a directory."""
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(path) for n in names)


def rsync_failure(stderr, code):
    """What an rsync that failed says: (kind, words): "missing" (no rsync on the node), "ssh" (ssh's
    own failure: the node's, ``words`` classified), "gone" (no such file) or "other" (its last line)."""
    text = stderr.decode("utf-8", "replace")
    if any(m in text for m in RSYNC_MISSING) or code == 127:
        return "missing", "no rsync on the node"
    reason, _ = ssh.classify(stderr)
    if reason is not None:
        return "ssh", reason
    if "No such file or directory" in text and "link_stat" in text:
        return "gone", "no such file"
    last = [ln for ln in text.splitlines() if ln.strip()]
    return "other", (last[-1].strip() if last else f"rsync exit {code}")[:200]
