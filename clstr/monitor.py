"""The periodic writers of a run: the --status line, the --state snapshot, the --active-nodes file.

Each is written when due and at the end; the supervisor's loop asks when the next is due
(``waits``) so that it sleeps until then and no longer. Writing goes through the supervisor's
``write`` (a failure stops the run from starting jobs, reported once).
"""
import time

from .output import write_active, write_state
from .result import FAILED, NOT_RUN, SUCCEEDED
from .state import snapshot
from .status import Rate, status_line

ACTIVE_INTERVAL = 0.5  # the --active-nodes file is rewritten at most this often
STATE_INTERVAL = 1.0  # the --state file: at most this often, and this often while the run goes


class Monitor:
    """The --status line (``status``: an output.StatusDisplay or None), the ``state`` file and the
    ``active`` file (paths or None) of the run of ``sched``."""

    def __init__(self, sched, board, status, state, active, write, clock, t_start, started):
        """``board``: the slots' shared board (busy slots); ``write(what, fn, *args)``: the
        supervisor's writer; ``started``: epoch seconds each slot's running attempt started (the
        supervisor's own list, grown with the pool)."""
        self.sched = sched
        self.board = board
        self.status = status
        self.state = state
        self.active = active
        self.write = write
        self.clock = clock
        self.t_start = t_start
        self.started = started
        self.rate = Rate(clock)
        self.active_dirty = False
        self.active_last = 0.0
        self.state_next = 0.0  # when the --state file is written next
        self.gateways = None  # what gives the gateways' states, in a run with gateways

    def changed(self):
        """The running jobs changed: the --active-nodes file is rewritten when next due."""
        self.active_dirty = True

    def waits(self, now):
        """The times (from ``now``, seconds) the loop must wake at for these writers."""
        waits = []
        if self.status is not None:
            waits.append(self.status.interval)
        if self.active_dirty:
            waits.append(self.active_last + ACTIVE_INTERVAL - now)
        if self.state:
            waits.append(self.state_next - now)
        return waits

    def tick(self, stopping):
        """Write what is due (``stopping``: a signal came, the run ends its jobs)."""
        if self.status is not None and self.status.due():
            self.draw()
        if self.state and self.clock() >= self.state_next:
            self.state_next = self.clock() + STATE_INTERVAL
            self.write_state("stopping" if stopping else "running")
        if self.active_dirty and self.active:
            now = self.clock()
            if now - self.active_last >= ACTIVE_INTERVAL:
                self.active_last = now
                self.active_dirty = False
                self.write(self.active, write_active, self.active,
                           [(n, c) for n, _, c in self.sched.running().values()])
        elif self.active_dirty:
            self.active_dirty = False

    def end(self):
        """The run is over: the --active-nodes file emptied, the last --state written."""
        if self.active:
            self.write(self.active, write_active, self.active, [])
        if self.state:
            self.write_state("finished")

    def close(self):
        """The status line's last drawing, after everything else was written."""
        if self.status is not None:
            self.draw(force=True)
            self.status.close()

    def draw(self, force=False):
        sched = self.sched
        c = sched.counts()
        complete = c[SUCCEEDED] + c[FAILED] + c[NOT_RUN]
        total = len(sched.jobs)
        interrupted = None
        if sched.interrupted is not None:  # the jobs it cut off (or never started) are not complete
            cut = sum(1 for j in sched.jobs.values() if j.outcome == NOT_RUN and j.reason == sched.interrupted)
            complete -= cut
            interrupted = cut + sum(1 for j in sched.jobs.values() if j.outcome is None)
        slots = len(sched.slots)
        unit = "nodes" if slots == len(sched.nodes) else "slots"
        rate, eta = self.rate.figures(complete, total) if self.status.tty and interrupted is None else (None, None)
        line = status_line(complete, total, self.board.busy(), slots, c[FAILED],
                           len(sched.retired_nodes()), rate, eta, unit, interrupted, c[SUCCEEDED])
        self.status.update(line, force=force, fraction=complete / total if total else 1.0)

    def write_state(self, state):
        c = self.sched.counts()
        rate, eta = self.rate.figures(sum(c.values()), len(self.sched.jobs))
        snap = snapshot(self.sched, state, self.t_start, time.time(), self.clock(), self.started, rate, eta,
                        self.gateways() if self.gateways else None)
        self.write(self.state, write_state, self.state, snap)
