"""Shared-memory status board of the slots.

Each worker writes only its own slot's cells; the supervisor reads them all
to draw ``--status`` and to find the ssh to end when a worker dies, without
asking anyone.
"""

IDLE, CONNECTING, RUNNING, GONE = 0, 1, 2, 3
# a slot's gate, which the supervisor and the slot's worker both write under its lock: whether the
# job of an attempt still connecting may go to another slot instead (the worker opened it, the
# supervisor asked for it, or it is closed: the worker starts the job, or decided not to)
CLOSED, OPEN, ASKED = 0, 1, 2


class Board:
    """Per-slot cells in shared memory: the slot's state and the pid of its running ssh."""

    def __init__(self, ctx, slots):
        # lock=False: one writer per cell (the slot's worker), and a torn read is impossible for
        # aligned machine words
        self.state = ctx.Array("b", slots, lock=False)
        self.pid = ctx.Array("i", slots, lock=False)
        self.gate = ctx.Array("b", slots)  # with a lock: two writers
        # a slot's held job (lookahead): the hold number of the job its worker may start next, 0 for
        # none; whoever takes it first (the worker starting it, the supervisor taking it back) has it
        self.ahead = ctx.Array("i", slots)

    def open_gate(self, slot):
        """The worker: its attempt connects and its job may go to a ready slot until ``claim``."""
        with self.gate.get_lock():
            self.gate[slot] = OPEN

    def claim(self, slot):
        """The worker: its connection is up (or failed); True if the supervisor took the job away
        meanwhile (it must not start), False if it is still the worker's. The gate closes."""
        with self.gate.get_lock():
            asked = self.gate[slot] == ASKED
            self.gate[slot] = CLOSED
        return asked

    def withdraw(self, slot):
        """The supervisor: take the job of the slot's attempt if it cannot start any more (True)."""
        with self.gate.get_lock():
            if self.gate[slot] != OPEN:
                return False
            self.gate[slot] = ASKED
        return True

    def close_gate(self, slot):
        """The supervisor, before it sends the slot a job: no withdrawal until its worker opens it."""
        with self.gate.get_lock():
            self.gate[slot] = CLOSED

    def hold(self, slot, number):
        """The supervisor, before it sends the slot a held job: the slot may start it next."""
        with self.ahead.get_lock():
            self.ahead[slot] = number

    def take(self, slot, number):
        """The worker, to start the held job ``number``, or the supervisor, to take it back: True for
        the one of them that asks first (the held job is then theirs alone)."""
        with self.ahead.get_lock():
            if self.ahead[slot] != number or not number:
                return False
            self.ahead[slot] = 0
        return True

    def busy(self):
        """Slots connecting or running a job, as the workers last wrote."""
        return sum(1 for s in self.state if s in (RUNNING, CONNECTING))
