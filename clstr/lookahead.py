"""Pure: lookahead, the job a slot holds to run next.

Between two jobs of a slot, its worker would tell the supervisor the first one ended and wait
for the next: a round trip through two processes a job, most of the cost of a short job. So a
slot running a job over a connection that is up may hold the job it runs next, sent ahead; its
worker starts it the moment its job ends with status 0 and tells the supervisor afterwards. A
job that ended otherwise starts nothing: its node is judged first, as without lookahead.

A held job is out of the queue but costs nothing until it starts: no attempt is counted, and it
goes back first in its queue when it does not start (``taken_back``). Which it is, is settled once
by the slot's kind (slots.Kind.take_back: the board's cell for a forked worker), whoever asks
first: the worker starting it or the supervisor taking it back. The supervisor takes held jobs
back when the run stops, when their node leaves, and at the tail: with nothing waiting, a held
job goes to a slot that is free rather than wait behind a long job.

Slots hold a job only where no usable slot is free (those take jobs first) and the queue has
one for them; only the slots that started a job or connected since they were last looked at are
looked at (the scheduler tells ``look_at``), so a dispatch costs nothing per idle slot.
"""
from .events import Job


class Ahead:
    """The held jobs of a Scheduler's slots (Slot.after, after_attempt, after_hold)."""

    def __init__(self, sched):
        self.sched = sched
        self.holding = {}  # slots holding a job
        self.may_hold = {}  # slots to look at: they started a job or connected since last looked at

    def look_at(self, idx):
        self.may_hold[idx] = None

    def give(self, holds, number):
        """[(slot, held events.Job)]: the slots that may hold a job now (their kind ``holds(idx)``),
        each given the job it runs next, numbered by ``number()``."""
        out = []
        sched = self.sched
        if not self.may_hold or sched.stopped is not None or not sched.pending() or sched.free_usable():
            return out
        limit = sched.policy.max_node_uses
        suspects = sched.quarantine.suspects()
        for idx in sorted(self.may_hold):
            s = sched.slots[idx]
            del self.may_hold[idx]  # (a slot not connected yet is looked at again once it is)
            if not s.busy or s.after is not None or s.withdrawn or s.retired or sched.nodes[s.node].out \
                    or s.node in suspects or (limit is not None and s.uses >= limit) \
                    or not sched.admission.ready(s) or not holds(idx):
                continue
            seq = sched.queue.next_for(s)
            if seq is None:
                continue
            s.after, s.after_attempt, s.after_hold = seq, len(sched.jobs[seq].attempts) + 1, number()
            s.uses += 1
            sched.nodes[s.node].jobs += 1
            self.holding[idx] = None
            out.append((idx, Job(seq, sched.text(seq, idx), s.after_attempt, hold=s.after_hold, after=s.busy)))
            if not sched.pending():
                break
        return out

    def takebacks(self, recheck=False):
        """[(slot, hold number)] of the held jobs to take back now: every one once no job may start;
        with ``recheck`` (a node left), those of slots that may no longer run them; and, with
        nothing waiting, as many as slots are free to start them at once."""
        sched = self.sched
        if not self.holding or (sched.stopped is None and sched.pending() and not recheck):
            return []
        held = [sched.slots[i] for i in self.holding]
        if sched.stopped is None:
            free = 0 if sched.pending() else sched.free_usable()
            unfit = [s.retired or s.removed or sched.nodes[s.node].out for s in held]
            held = [s for s, u in zip(held, unfit) if u] + [s for s, u in zip(held, unfit) if not u][:free]
        return [(s.index, s.after_hold) for s in held]

    def taken_back(self, slot):
        """The slot's held job did not start: first in its queue again, at no cost."""
        s = self.sched.slots[slot]
        seq, s.after = s.after, None
        del self.holding[slot]
        s.uses -= 1
        self.sched.nodes[s.node].jobs -= 1
        self.sched.queue.front(seq)
        if s.busy:
            self.may_hold[slot] = None  # it may hold another while its job runs

    def promoted(self, slot):
        """The slot's worker started its held job as its job ended: the slot runs it now. Its seq."""
        s = self.sched.slots[slot]
        seq = s.after
        self.sched.occupy(slot, seq, s.after_attempt)
        s.after = None
        del self.holding[slot]
        self.may_hold[slot] = None
        return seq

    def settle(self):
        """The run's end: a held job not settled yet (there should be none) waits in its queue."""
        for idx in list(self.holding):
            self.taken_back(idx)


class Holders:
    """The supervisor's side: which kind of slot (slots.Kind) holds each slot's held job.

    ``running(idx)``: the kind that runs slot ``idx``'s attempt now, or None."""

    def __init__(self, ahead, running):
        self.ahead = ahead
        self.running = running
        self.kind = {}  # slot -> the kind whose worker of it holds a job
        self.number = 0  # the last hold number given

    def give(self):
        """Send each slot that may hold a job now the job it runs next."""
        for idx, job in self.ahead.give(self._holds, self._next):
            kind = self.running(idx)
            if kind.hold(idx, job):
                self.kind[idx] = kind
            else:
                self.ahead.taken_back(idx)  # its worker is gone: its death is heard next

    def _holds(self, idx):
        kind = self.running(idx)
        return kind is not None and kind.holds(idx)

    def _next(self):
        self.number += 1
        return self.number

    def take_back(self, recheck=False):
        """The held jobs the scheduler wants back (Ahead.takebacks) go back to the queue, but those
        their worker started already. True if one did."""
        back = False
        for idx, number in self.ahead.takebacks(recheck):
            if self.kind[idx].take_back(idx, number, recall=True):
                del self.kind[idx]
                self.ahead.taken_back(idx)
                back = True
        return back

    def settle(self, idx):
        """Slot ``idx``'s job ended (or its worker died): the seq of the held job its worker started
        (the slot runs it now), or None (none, or it went back to the queue)."""
        slot = self.ahead.sched.slots[idx]
        if slot.after is None:
            return None
        if self.kind.pop(idx).take_back(idx, slot.after_hold):
            self.ahead.taken_back(idx)
            return None
        return self.ahead.promoted(idx)
