"""A live node list: the files it comes from, watched, and how to read it again (issue 14).

As GNU parallel re-reads its ``--slf`` file: when a node file (``-N``) or a profile file
changes while a run goes, the run's node list is read again; nodes added join, nodes
removed get no new job. Only regular files are watched (a ``<(...)`` pipe is read once).
"""
import os


class NodeSource:
    """``files``: the paths to watch; ``read()``: the node list now (a node name per slot), or
    InputError if a file is not valid now."""

    def __init__(self, files, read):
        self.files = [f for f in dict.fromkeys(files) if os.path.isfile(f)]
        self.read = read
        self.seen = self.signature()

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
