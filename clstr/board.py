"""Shared-memory status board of the slots.

Each worker writes only its own slot's cells; the supervisor reads them all
to draw ``--status`` and to find the ssh to end when a worker dies, without
asking anyone.
"""

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
