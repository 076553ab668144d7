"""The run's private directory of ControlMaster sockets: short paths, and no leftovers of dead runs.

A Unix socket path holds at most 107 bytes, and ssh adds 17 for the temporary name it binds
first, so the directory lives under the first of $TMPDIR, /tmp, /dev/shm that leaves room
(HPC scratch directories in $TMPDIR are often too long). Its name carries the supervisor's
pid: a run killed with SIGKILL cannot remove it, so each run removes those of dead runs,
and ends their masters (which would idle on for ControlPersist seconds).
"""
import os
import shutil

from .errors import InputError

SOCKET_MAX = 107  # sizeof(sun_path) - 1
SSH_SUFFIX = 17  # ssh binds "<ControlPath>.<16 random characters>", then renames it
PREFIX = "clstr-"


def bases(environ=None):
    """Where the directory may go, in order of preference."""
    env = os.environ if environ is None else environ
    out = []
    for d in (env.get("TMPDIR"), "/tmp", "/dev/shm", "/var/tmp"):
        if d and d not in out:
            out.append(d)
    return out


def fits(base, longest_name):
    """Whether sockets named up to ``longest_name`` characters fit under a directory made in ``base``."""
    # base/clstr-<pid>.<8 random>/<name>.<ssh's suffix>
    return len(os.path.abspath(base)) + 1 + len(PREFIX) + 7 + 1 + 8 + 1 + longest_name + SSH_SUFFIX <= SOCKET_MAX


def make(longest_name, environ=None):
    """Create the run's directory (mode 0700); returns its path. Removes dead runs' directories first."""
    for base in bases(environ):
        if not fits(base, longest_name) or not os.path.isdir(base) or not os.access(base, os.W_OK | os.X_OK):
            continue
        clean_stale(base)
        import tempfile  # only runs that share connections need it
        return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}.", dir=base)
    raise InputError("no directory for ControlMaster sockets with a path short enough "
                     f"(tried {', '.join(bases(environ))})")


def clean_stale(base):
    """Remove the control directories in ``base`` that are ours and whose run is dead."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    me = os.getuid()
    for name in names:
        if not name.startswith(PREFIX):
            continue
        pid, dot, _ = name[len(PREFIX):].partition(".")
        if not dot or not pid.isdigit():
            continue
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_uid != me or not os.path.isdir(path) or os.path.islink(path):
            continue
        if _alive(int(pid)):
            continue
        end_masters(path)
        shutil.rmtree(path, ignore_errors=True)


def end_masters(path):
    """TERM the ControlMasters of ours whose socket is in ``path`` (their run is dead; they idle on)."""
    import signal
    marker = f"ControlPath={path}/".encode()
    me = os.getuid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != me:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            if marker in cmdline and b"ControlMaster=yes" in cmdline:
                os.kill(int(pid), signal.SIGTERM)
        except OSError:
            continue


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ControlPaths:
    """The ControlMaster socket path of each connection group of a run: ``<dir>/<node>-<group>``,
    numbers, so that paths stay short; the directory made at once (``make``), removed by ``remove``.

    ``nodes``: the run's node names; ``capacity``: the most slots (and so groups) it may come to.
    """

    def __init__(self, nodes, capacity):
        self.index = {node: i for i, node in enumerate(nodes)}  # node -> its number
        longest = len(f"{len(self.index) + capacity}-{capacity}")
        self.dir = make(longest + 4)  # + ".err", the master's log beside its socket
        self.paths = {}

    def path(self, group):
        """The socket path of connection group ``group`` (node, n)."""
        path = self.paths.get(group)
        if path is None:
            node, n = group
            i = self.index.setdefault(node, len(self.index))
            path = self.paths[group] = os.path.join(self.dir, f"{i}-{n}")
        return path

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)
