"""The clocks of a kind of slot read on the supervisor's own loop (execslot.py, loopslot.py).

Each of its items (an attempt, a session) says when it is next due (``due()``; None: nothing),
acts when it is (``clock(now)``), is planned again afterwards unless ``finished``, and keeps the
time it was last planned for (``planned``): stale entries of the heap are skipped. What an item
says within a verb the supervisor called (``starting``) is handed over on the next tick, not
into the middle of that verb.
"""
import heapq
import itertools


class Clocked:
    """``emit(idx, event)``: hands an event to the supervisor as if the slot's worker had sent it."""

    def __init__(self, emit):
        self.emit_now = emit
        self.starting = False  # within a verb of the supervisor's: what is said goes on the next tick
        self.later = []  # (slot, event) said meanwhile
        self.heap = []  # (when, n, item): the items' clocks, stale entries skipped
        self.count = itertools.count()

    def emit(self, idx, event):
        """Hand an event to the supervisor; within one of its verbs, on the next tick."""
        if self.starting:
            self.later.append((idx, event))
        else:
            self.emit_now(idx, event)

    def plan(self, item):
        due = item.due()
        if due is not None and due != item.planned:
            item.planned = due
            heapq.heappush(self.heap, (due, next(self.count), item))

    def next_due(self):
        """The earliest clock of any item (None: none); at once, with an event to hand over."""
        if self.later:
            return 0.0
        while self.heap and (self.heap[0][2].planned != self.heap[0][0] or self.heap[0][2].finished):
            heapq.heappop(self.heap)
        return self.heap[0][0] if self.heap else None

    def tick(self, now):
        """Hand over what was said meanwhile; act on the clocks that are due."""
        later, self.later = self.later, []
        for idx, event in later:
            self.emit_now(idx, event)
        while True:
            due = self.next_due()
            if due is None or due > now:
                return
            _, _, item = heapq.heappop(self.heap)
            item.planned = None
            item.clock(now)
            if not item.finished:
                self.plan(item)
