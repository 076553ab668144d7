"""A slot's shared connection to its node: its ControlMaster, opened before the slot's first
job there (and, with --persist, found alive from an earlier run, or opened to outlive this one).

The worker (worker.py) asks ``open()`` when its attempt opens the connection; the board shows the
slot connecting and the master's pid meanwhile, so that a stop ends it.
"""
import os
import time

from . import controldir, reaper
from .board import CONNECTING
from .deadlines import start_bound
from .phases import master_opened
from .proc import Child, end_group

LOCK_POLL = 0.02  # seconds between looks at a persisted connection's lock another run holds


class Master:
    """The ControlMaster of slot ``slot`` at ``control_path``, reached by ``reach`` (a transport);
    ``persist``: --persist's seconds or None; ``judge``: the slot's judging.Judge (asks whether a
    master is alive); ``board``: the shared status board; ``devnull``: an open /dev/null."""

    def __init__(self, slot, reach, control_path, persist, env, connect_timeout, judge, board, devnull):
        self.slot = slot
        self.reach = reach
        self.control_path = control_path
        self.persist = persist
        self.env = env
        self.connect_timeout = connect_timeout
        self.judge = judge
        self.board = board
        self.devnull = devnull
        self.reused = None  # --persist: whether the master it opened last was found persisted

    def open(self):
        """Open the node's ControlMaster; returns (ok, classified reason or None)."""
        self.board.state[self.slot] = CONNECTING
        if self.persist is None:
            return self._master(self.env)
        # one run at a time opens a node's persisted connection (controldir.MasterLock)
        lock, deadline = controldir.MasterLock(self.control_path), time.monotonic() + start_bound(self.connect_timeout)
        try:
            while not lock.take():
                if time.monotonic() >= deadline:
                    return False, controldir.LOCK_BUSY
                time.sleep(LOCK_POLL)  # another run opens it now: it is found alive once that is done
            self.reused = self.judge.master_alive()
            if self.reused:  # an earlier run's connection, persisted: no handshake
                return True, None
            try:
                os.unlink(self.control_path)  # a dead master's socket, if any: ssh would not bind over it
            except OSError:
                pass
            # the master outlives the run, as asked: it does not carry the run's marker, which the
            # backstop ends at the end of the run
            return self._master(reaper.unmarked(self.env), check_bound=True)
        finally:
            lock.close()

    def _master(self, env, check_bound=False):
        """Start the master and wait for it to be up; (ok, classified reason or None).
        ``check_bound``: --persist: one up but without its socket is ended (phases.master_opened)."""
        errfile = f"{self.control_path}.err"
        argv = self.reach.master_argv(self.control_path, self.persist)
        with open(errfile, "wb") as err:
            # the backgrounded master keeps stderr open: a file, not a pipe we would wait on
            child = Child(argv, env, self.devnull, self.devnull, err.fileno())
        self.board.pid[self.slot] = child.pid
        code = child.wait(start_bound(self.connect_timeout))
        late = code is None
        if late:  # connected but stalled in the key exchange or the login
            end_group(child.pid, child=child)
            code = child.wait()
        self.board.pid[self.slot] = 0
        bound = None
        if check_bound and code == 0 and not late:
            bound = self.judge.master_alive()
            if not bound:
                controldir.end_unbound(self.control_path)
        return master_opened(self.judge, code, late, bound)

