"""A live node list: the files it comes from, watched, and how to read it again.

As GNU parallel re-reads its ``--slf`` file: when a node file (``-N``) or a profile file
changes while a run goes, the run's node list is read again; nodes added join, nodes
removed get no new job. Only regular files are watched (a ``<(...)`` pipe is read once), and
read again only while they are regular files (userfiles.py): nothing here can block the loop.
"""
import os

from .errors import InputError

WATCH_INTERVAL = 1.0  # the files are looked at this often


class NodeSource:
    """``files``: the paths to watch; ``read()``: the node list now (a node name per slot), or
    InputError if a file is not valid now."""

    def __init__(self, files, read):
        self.files = [f for f in dict.fromkeys(files) if os.path.isfile(f)]
        self.read = read
        self.seen = self.signature()
        self.next_at = 0.0  # when the files are looked at next (the supervisor's clock)

    def signature(self):
        sig = []
        for path in self.files:
            try:
                st = os.stat(path)
                sig.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                sig.append(None)
        return sig

    def changed(self):
        """Whether a file changed (or went, or came back) since the last call."""
        sig = self.signature()
        if sig == self.seen:
            return False
        self.seen = sig
        return True

    def poll(self, now, log):
        """The node list read again if it is time to look and a file changed (else None); a list
        that cannot be read now is one line to ``log``, and None: the run keeps the one it has."""
        if now < self.next_at:
            return None
        self.next_at = now + WATCH_INTERVAL
        if not self.changed():
            return None
        try:
            return self.read()
        except InputError as e:
            log(f"{e}; the run keeps its node list")
            return None
