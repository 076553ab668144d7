"""The slot contract: the one way the supervisor reaches the slots of every kind.

A kind of slot runs attempts of some of the run's slots, one at a time a slot: forked workers
over ssh (pool.py), slots whose worker is their ssh (execslot.py), slots on this machine whose
job loop the supervisor reads itself (loopslot.py), remote slots behind a gateway (remotepool.py). The supervisor holds its kinds in the order they are asked (``KINDS``
makes them), hands each assigned attempt to the first kind that takes it, and otherwise speaks
to every kind alike, never branching on which one it is. Events come back from every kind the
same way (the supervisor's ``on_events``, pool.py's contract); a kind that learns a slot's
worker died says so through the callback it was given.

The verbs:

* ``take(idx, job)``: start slot ``idx``'s attempt of ``job`` if this kind drives the slot now:
  STARTED; NOT_MINE (another kind's); NOT_STARTED (it could not start, and that was recorded:
  the slot left out, or its worker found dead).
* ``runs(idx)``: whether an attempt of the slot runs here now.
* ``limit(idx, seconds)``: a straggler's limit for the slot's running attempt.
* ``withdraw(idx)``: the slot's attempt is still opening its connection: True if its job is
  sure not to start there (it goes to a slot that is ready), False if that cannot be known.
* ``holds(idx)``, ``hold(idx, job)`` and ``take_back(idx, number, recall)``: lookahead. Whether the
  slot's worker here can hold a job to start the moment its running one ends well (lookahead.py);
  send it one (False if its worker is gone); take it back unless the worker started it already
  or sent it ahead down its session (True: it did not start, and never will). With ``recall``,
  one sent ahead is asked back there: it can be taken back once the worker says so (Recalled).
* ``release(idx)``: the slot's worker here, if it has one, goes (another kind took the slot).
* ``ended(idx, keep)``: the slot's attempt ended; ``keep``: the slot may get more jobs (else its
  worker here goes at once).
* ``idle(is_idle)``: nothing waits: idle workers (``is_idle(idx)``) go.
* ``live_slots()``: the slots whose worker lives here (the scheduler prefers them).
* ``pause(on)``: stop (or resume) reading the attempts: the output's reader is behind.
* ``next_due()`` and ``tick(now)``: the kind's clocks (None: none).
* ``stop()``: the run ends its running attempts (a signal, --halt now): beyond the TERM and KILL
  the supervisor sends to the ssh on the board, what the kind must do itself.
* ``overdue(idx, since)``: the slot's attempt got its KILL ``since`` seconds ago and has not
  reported: what the kind does about it (a forked worker is killed and its death recorded).
* ``node_left(name)``: a node left the run (retired): a kind that routes nodes routes it anew.
* ``clean(nodes, line)``: --cleanup at the run's end: ``line`` run on those of ``nodes`` the kind
  drives, by the kind; returns the nodes it took.
* ``shutdown()``: the run ends; nothing of the kind is left.

A new kind is one class here (or a module of its own) and one line in ``KINDS``.
"""
import time

from . import transfer, transports
from .events import Finished, Limit, Recall
from .result import Ending
from .routes import UNREACHABLE

NOT_MINE, STARTED, NOT_STARTED = "not mine", "started", "not started"
GATEWAY_REPORT = 4.0  # after the KILL: how long a gateway gets to report its slots' ends


class Kind:
    """What every verb does where a kind has nothing to do."""

    def take(self, idx, job):
        return NOT_MINE

    def runs(self, idx):
        return False

    def limit(self, idx, seconds):
        pass

    def withdraw(self, idx):
        return False

    def holds(self, idx):
        return False

    def hold(self, idx, job):
        return False

    def take_back(self, idx, number, recall=False):
        return True  # a kind that holds nothing has nothing of it started

    def release(self, idx):
        pass

    def ended(self, idx, keep):
        pass

    def idle(self, is_idle):
        pass

    def live_slots(self):
        return set()

    def pause(self, on):
        pass

    def next_due(self):
        return None

    def tick(self, now):
        pass

    def stop(self):
        pass

    def overdue(self, idx, since):
        pass

    def node_left(self, name):
        pass

    def clean(self, nodes, line):
        return set()

    def shutdown(self):
        pass


class Forked(Kind):
    """A forked worker process a slot (pool.WorkerPool), kept while its slot gets jobs.

    ``slots``: the scheduler's; ``groups``: slot -> the connection group its live worker was
    started for (filled as workers start); ``max_running``: -m N, the most workers alive;
    ``left_out(idx, job, what, error)`` and ``died(idx)``: the supervisor's records of a slot
    that could not start and of a worker found dead.
    """

    def __init__(self, pool, slots, groups, max_running, left_out, died, clock):
        self.lookahead = False  # the run lets its workers hold a job (the supervisor's run() says)
        self.recalled = {}  # slot -> the hold number last asked back of its worker
        self.pool = pool
        self.slots = slots
        self.groups = groups
        self.max_running = max_running
        self.left_out = left_out
        self.died = died
        self.clock = clock

    def take(self, idx, job):
        self.pool.board.close_gate(idx)  # a gate left open by the slot's last attempt
        if not self.pool.live(idx):
            self._make_room()
            try:
                self.pool.start(idx, job)  # with its first job: it starts ssh with no message to wait for
            except OSError as e:
                self.left_out(idx, job, "no worker could be started", e)
                return NOT_STARTED
            return STARTED
        if not self.pool.send(idx, job):
            self.died(idx)
            return NOT_STARTED
        return STARTED

    def _make_room(self):
        """Before a new worker starts: with -m N, at most N workers live, so an idle one goes."""
        if self.max_running is None:
            return
        excess = self.pool.count() - self.max_running + 1
        idle = [i for i in sorted(self.pool.live_slots()) if self.slots[i].busy is None]
        for idx in idle[:max(0, excess)]:
            self.pool.release(idx)

    def runs(self, idx):
        return self.pool.live(idx) and self.slots[idx].busy is not None

    def limit(self, idx, seconds):
        self.pool.send(idx, Limit(seconds))

    def withdraw(self, idx):
        return self.pool.live(idx) and self.pool.board.withdraw(idx)  # the worker opened its gate

    def holds(self, idx):
        return self.lookahead and self.pool.live(idx)

    def hold(self, idx, job):
        self.pool.board.hold(idx, job.hold)
        if self.pool.send(idx, job):
            return True
        self.pool.board.take(idx, job.hold)
        return False

    def take_back(self, idx, number, recall=False):
        if self.pool.board.take(idx, number):
            return True
        if recall and self.recalled.get(idx) != number and self.pool.live(idx):
            # its worker sent it ahead down the session: it is asked back there, once
            self.recalled[idx] = number
            self.pool.send(idx, Recall(number))
        return False

    def release(self, idx):
        if self.pool.live(idx):
            self.pool.release(idx)

    def ended(self, idx, keep):
        # its worker goes at once if the slot gets no further job, or if the slot moved to a
        # connection of its own (a busy sshd refused its session)
        if self.pool.live(idx) and (not keep or self.slots[idx].group != self.groups.get(idx)):
            self.pool.release(idx)

    def idle(self, is_idle):
        for idx in sorted(self.pool.live_slots()):
            if is_idle(idx):
                self.pool.release(idx)

    def live_slots(self):
        return self.pool.live_slots()

    def pause(self, on):
        self.pool.pause(on)

    def overdue(self, idx, since):
        if self.pool.live(idx):
            self.pool.kill(idx)
            self.died(idx)

    def shutdown(self):
        self.pool.shutdown(self.clock)


class Exec(Kind):
    """Slots whose worker is their ssh (execslot.ExecSlots): one job a slot, nothing kept."""

    def __init__(self, execs, slots, control, left_out):
        self.execs = execs
        self.slots = slots
        self.control = control
        self.left_out = left_out

    def take(self, idx, job):
        slot = self.slots[idx]
        try:
            self.execs.start(idx, slot.node, job,
                             transports.control_path(self.control, self.execs.cfg, slot.node, slot.group))
        except OSError as e:
            self.left_out(idx, job, "its ssh could not be started", e)
            return NOT_STARTED
        return STARTED

    def runs(self, idx):
        return self.execs.busy(idx)

    def limit(self, idx, seconds):
        self.execs.limit(idx, seconds)

    def pause(self, on):
        self.execs.pause(on)

    def next_due(self):
        return self.execs.next_due()

    def tick(self, now):
        self.execs.tick(now)

    def shutdown(self):
        self.execs.shutdown()


class Gateway(Kind):
    """Remote slots behind the run's gateways (remotepool.GatewayPool, set as ``gw`` once made): a
    slot is the gateway's while its node's route goes through one; each node's route is kept on
    the scheduler's node, where admission counts its connections.

    ``sched``: the run's Scheduler; ``finished(ev)``: an attempt that ends before it could go (its
    node unreachable, a file to send unreadable here).
    """

    def __init__(self, sched, finished):
        self.gw = None
        self.sched = sched
        self.slots = sched.slots
        self.finished = finished
        self.stopped = False

    # ---- routes --------------------------------------------------------
    def route_all(self):
        for name in self.sched.nodes:
            self._routed(name, self.gw.route(name))

    def _routed(self, name, where):
        """The node's route, kept where admission counts its connections (its gateway; None for the
        root, or for none at all); returns it."""
        self.sched.nodes[name].gateway = where if isinstance(where, str) else None
        return where

    def lost(self, name):
        """A gateway was lost: the nodes it drove leave the run; each comes back through its next route."""
        for node_name, node in self.sched.nodes.items():
            if node.gateway == name:
                self.sched.retire_node(node_name, f"gateway {name} lost")
                self.node_left(node_name)

    def node_left(self, name):
        self._routed(name, self.gw.reroute(name))  # its probe may go through another gateway

    def clean(self, nodes, line):
        by = {}
        for node in nodes:
            where = self.gw.route(node)
            if isinstance(where, str):
                by.setdefault(where, []).append((node, 0))
        for name, groups in by.items():
            self.gw.cleanup(name, sorted(groups), line)
        return {n for groups in by.values() for n, _ in groups}

    # ---- the contract --------------------------------------------------
    def take(self, idx, job):
        slot = self.slots[idx]
        where = self._routed(slot.node, self.gw.route(slot.node))
        if where is None:
            return NOT_MINE  # the root drives the node
        if where is UNREACHABLE:
            self.finished(Finished(idx, job.seq, 255, time.time(), 0.0, Ending.NEVER_RAN,
                                   self.gw.unreachable_why(slot.node)))
            return STARTED
        try:
            self.gw.send(where, idx, slot.node, slot.group, job)
        except transfer.TransferError as e:  # a file to send cannot be read here: the attempt fails
            self.finished(Finished(idx, job.seq, 255, time.time(), 0.0,
                                   Ending.FILE_FAILED if e.here else Ending.TRANSFER, str(e)))
        return STARTED

    def runs(self, idx):
        return self.gw.running(idx)

    def limit(self, idx, seconds):
        self.gw.limit(idx, seconds)

    def release(self, idx):
        self.gw.release(idx)

    def ended(self, idx, keep):
        if idx in self.gw.owner and not keep:
            self.gw.release(idx)

    def idle(self, is_idle):
        for idx in sorted(self.gw.live_slots()):
            if is_idle(idx):
                self.gw.release(idx)

    def pause(self, on):
        self.gw.pause(on)

    def next_due(self):
        return self.gw.next_due()

    def tick(self, now):
        self.gw.tick(now)

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.gw.stop()  # each gateway ends its running jobs: TERM, then KILL after the same grace

    def overdue(self, idx, since):
        if since >= GATEWAY_REPORT:
            self.gw.abandon(idx, "its gateway did not report its end after the KILL")

    def shutdown(self):
        self.gw.shutdown()
