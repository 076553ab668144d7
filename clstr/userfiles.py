"""The one reader of the user's files: job files, node files, ``^FILE``, profiles.

Every such file is read with one set of rules and a size bound, and never blocks a loop:

* At most ``LIMITS[what]`` bytes: a job file 256 MiB (a million jobs of 250 bytes), a node
  file, a ``^FILE``, a profile or topology file 16 MiB (node lists hold at most 100,000 slots). A larger
  file is refused in one line, ``FILE: job file is larger than 256 MiB (...)``, before it is
  read whole: a link to ``/dev/zero`` cannot take the machine's memory.
* ``regular_only`` (a live node list read again mid-run): only a regular file is read; a FIFO,
  socket, device or directory is refused in one line, and nothing is opened that could block
  (the open itself is non-blocking). At the start of a run a pipe is fine (``<(...)``, ``-``).
* Lines: only ``\\n`` (or ``\\r\\n``) ends a line, as in a shell script; a UTF-8 byte order
  mark at the start is dropped; a NUL byte is an error naming its line; bytes that are not
  UTF-8 are kept as they are (surrogate escapes), so a job's bytes reach the node unchanged.
"""
import os
import stat
import sys

from .errors import InputError

MIB = 1024 * 1024
LIMITS = {"job file": 256 * MIB, "node file": 16 * MIB, "profile file": 16 * MIB, "argument file": 256 * MIB,
          "topology file": 16 * MIB, "genders file": 16 * MIB, "inventory file": 64 * MIB}
READ_SIZE = 1024 * 1024


def _kind(mode):
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def _size_text(n):
    return f"{n // MIB} MiB"


def read_bytes(path, what, regular_only=False, stdin=None):
    """The bytes of the user's file ``path`` (``-``: stdin), at most ``LIMITS[what]``; InputError
    naming the file otherwise."""
    limit = LIMITS[what]
    if path == "-":
        return _read_bounded((stdin or sys.stdin.buffer).read, "<stdin>", what, limit)
    try:
        # mid-run, the open itself must not wait (a FIFO waits for a writer); at the start a FIFO
        # is read as `cat` reads it, its writer awaited
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC | (os.O_NONBLOCK if regular_only else 0))
    except FileNotFoundError:
        raise InputError(f"{what} not found", path) from None
    except IsADirectoryError:
        raise InputError(f"{what} is a directory", path) from None
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror}", path) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{what} is a directory", path)
        regular = stat.S_ISREG(st.st_mode)
        if not regular and regular_only:
            raise InputError(f"{what} is {_kind(st.st_mode)}, not a regular file: not read while the run goes",
                             path)
        if regular and st.st_size > limit:
            raise InputError(f"{what} is larger than {_size_text(limit)} ({st.st_size} bytes)", path)
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
            return _read_bounded(f.read, path, what, limit)
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror or e}", path) from None
    finally:
        os.close(fd)


def _read_bounded(read, where, what, limit):
    chunks, total = [], 0
    while True:
        data = read(min(READ_SIZE, limit + 1 - total))
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        total += len(data)
        if total > limit:
            raise InputError(f"{what} is larger than {_size_text(limit)}", where)


def split_lines(data, where, what="file"):
    """``data`` (bytes) as [(line number, text)], by the rules of the module docstring."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\0" in data:
        n = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise InputError(f"{what} has a NUL byte (not a text file?)", f"{where}:{n}")
    text = data.decode("utf-8", "surrogateescape")
    rows = text.split("\n")
    if rows and rows[-1] == "":
        rows.pop()
    return [(n, line[:-1] if line.endswith("\r") else line) for n, line in enumerate(rows, 1)]


def read_lines(path, what, regular_only=False):
    """The numbered lines of the user's file ``path`` (``-``: stdin); see the module docstring."""
    return split_lines(read_bytes(path, what, regular_only), path if path != "-" else "<stdin>", what)


def read_text(path, what, regular_only=False):
    """The text of a file that must be UTF-8 (a profile file): BOM dropped, NUL and bad bytes refused
    naming the line."""
    data = read_bytes(path, what, regular_only)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        n = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{what} is not UTF-8 text (byte {data[e.start]:#04x})", f"{path}:{n}") from None
    if "\0" in text:
        n = text.count("\n", 0, text.index("\0")) + 1
        raise InputError(f"{what} has a NUL byte (not a text file?)", f"{path}:{n}")
    return text
