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
    _end_masters(f"ControlPath={path}/".encode())


def _end_masters(marker):
    """TERM the ControlMasters of ours whose command line holds ``marker`` (bytes)."""
    import signal
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


class MasterLock:
    """A lock on the opening of a persisted connection (``<socket>.lock``, flock): runs started at
    once must not each open a master, for all but one would fail to bind the socket and idle on as
    connections nothing can find or end. Held from the look for a live master to the new one's
    start; a run that dies lets go with its descriptors."""

    def __init__(self, socket_path):
        import fcntl
        self._fcntl = fcntl
        self.fd = os.open(f"{socket_path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def take(self):
        """Whether it is ours now (never waits)."""
        try:
            self._fcntl.flock(self.fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


LOCK_BUSY = "another clstr run was opening its persisted connection all the while"
NOT_BOUND = "its persisted connection could not take its socket (something else is at {})"


def end_unbound(socket_path):
    """End the ControlMasters of ours for ``socket_path`` that hold no socket there (a master that
    could not bind it idles on as a connection with no socket: nothing could find or end it)."""
    _end_masters(f"ControlPath={socket_path}\0".encode())


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

    persistent = False

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


# --persist: shared connections that outlive the run, in one private directory of the user's
PERSIST = "clstr-persist"
PERSIST_NAME = 16 + 1 + 4  # <16 hex of the connection's identity>-<group>


def persist_bases(environ=None):
    """Where the persisted connections' directory may go: $XDG_RUNTIME_DIR (the user's own, 0700,
    emptied at logout), then where a run's directory goes."""
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR")
    return ([runtime] if runtime else []) + [b for b in bases(environ) if b != runtime]


def persist_dir(environ=None):
    """The user's directory of persisted ControlMaster sockets (mode 0700, made if missing).

    A directory found there that is not ours alone (a link, another owner, open to others) is
    refused in one line: its sockets would hand our connections to someone else.
    """
    tried = []
    for base in persist_bases(environ):
        if not base or not os.path.isdir(base) or not os.access(base, os.W_OK | os.X_OK):
            continue
        path = os.path.join(base, f"{PERSIST}-{os.getuid()}")
        if len(os.path.abspath(path)) + 1 + PERSIST_NAME + 4 + SSH_SUFFIX > SOCKET_MAX:
            tried.append(base)
            continue
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise InputError(f"cannot make the directory of persisted connections: {e.strerror}", path) from None
        st = os.lstat(path)
        import stat
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise InputError("not a private directory of ours (a link, another owner, or open to others): "
                             "persisted connections are not kept there", path)
        return path
    raise InputError("no directory for persisted connections with a path short enough "
                     f"(tried {', '.join(persist_bases(environ)) or 'none'})")


class PersistentPaths:
    """The sockets of --persist connections: ``<dir>/<identity>-<group>``, where the identity is a
    hash of everything that makes the connection (the ssh command and options, the node, its user
    and port as written), so that a later run with the same finds it and no other run takes it."""

    persistent = True

    def __init__(self, base_argv, environ=None):
        self.dir = persist_dir(environ)
        self.base = "\0".join(base_argv)
        self.paths = {}

    def identity(self, node):
        import hashlib
        return hashlib.sha256(f"{self.base}\0{node}".encode("utf-8", "surrogateescape")).hexdigest()[:16]

    def path(self, group):
        path = self.paths.get(group)
        if path is None:
            node, n = group
            path = self.paths[group] = os.path.join(self.dir, f"{self.identity(node)}-{n}")
        return path

    def of_node(self, node):
        """The sockets there are of ``node``'s connections (every group)."""
        prefix = self.identity(node) + "-"
        return self.sockets(lambda name: name.startswith(prefix))

    def sockets(self, keep=lambda name: True):
        try:
            names = os.listdir(self.dir)
        except OSError:
            return []
        return sorted(os.path.join(self.dir, n) for n in names if not n.endswith(".err") and keep(n))

    def remove(self):
        """Nothing: the connections and their directory outlive the run, as asked."""
