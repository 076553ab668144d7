"""Shared-memory status board of the slots, and the status line drawn from it.

Each worker writes only its own slot's cells; the supervisor reads them all
to draw ``--status`` and to find the ssh to end when a worker dies, without
asking anyone.
"""
import time

IDLE, CONNECTING, RUNNING, GONE = 0, 1, 2, 3


class Board:
    """Per-slot cells in shared memory: the slot's state and the pid of its running ssh."""

    def __init__(self, ctx, slots):
        # lock=False: one writer per cell (the slot's worker), and a torn read is impossible for
        # aligned machine words
        self.state = ctx.Array("b", slots, lock=False)
        self.pid = ctx.Array("i", slots, lock=False)

    def busy(self):
        """Slots connecting or running a job, as the workers last wrote."""
        return sum(1 for s in self.state if s in (RUNNING, CONNECTING))


def format_eta(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def status_line(complete, total, running, slots, failed=0, retired=0, rate=None, eta=None):
    """The seed's line, e.g. ``110 of 556 jobs complete, 176 of 176 nodes running jobs.``"""
    line = f"{complete} of {total} jobs complete, {running} of {slots} nodes running jobs."
    extra = []
    if failed:
        extra.append(f"{failed} failed")
    if retired:
        extra.append(f"{retired} nodes retired")
    if rate is not None:
        extra.append(f"{rate:.1f} jobs/s")
    if eta is not None:
        extra.append(f"ETA {format_eta(eta)}")
    if extra:
        line += " " + ", ".join(extra) + "."
    return line


class Rate:
    """Jobs per second since the first completion, and the ETA it implies."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.t0 = clock()

    def figures(self, complete, total):
        elapsed = self.clock() - self.t0
        if complete == 0 or elapsed <= 0:
            return None, None
        rate = complete / elapsed
        return rate, (total - complete) / rate
