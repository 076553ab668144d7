"""The pure core: which job goes to which slot, and what a failure means.

No processes, no clock: the supervisor feeds it what happened (a slot's node
connected, an attempt finished, a worker died, the run was interrupted) and
asks it for the next assignments. Every job ends in exactly one outcome:
``succeeded``, ``failed`` (with why) or ``not run`` (with why).
"""
import random
from dataclasses import dataclass, field
from typing import List, Optional

from .admission import Admission
from .endings import Endings
from .jobqueue import JobQueue
from .lookahead import Ahead
from .health import Health
from .quarantine import Quarantine
from .templates import MARKS, for_slot, shown
from .verdicts import JOB_FAILURES, NODE_FAILURES, Verdicts
from .events import PROBE, Job
from .result import FAILED, NOT_RUN, SUCCEEDED, Absence, JobResult
from .words import counted

PROBE_COMMAND = "exit 0"


@dataclass(frozen=True)
class Halt:
    """--halt WHEN,WHAT=N (GNU parallel's): once N jobs (or N% of the jobs) have failed, succeeded or
    are done (either), start no new job; with ``now``, end the running ones too."""

    when: str  # "soon" (running jobs finish) or "now" (they are ended)
    what: str  # "fail", "success" or "done"
    count: Optional[int] = None
    percent: Optional[float] = None

    def reached(self, succeeded, failed, total):
        n = {"fail": failed, "success": succeeded, "done": succeeded + failed}[self.what]
        if self.percent is not None:
            return n > 0 and n * 100 >= self.percent * total
        return n >= self.count

    def reason(self, succeeded, failed):
        n = {"fail": failed, "success": succeeded, "done": succeeded + failed}[self.what]
        verb = {"fail": "failed", "success": "succeeded", "done": "done"}[self.what]
        return f"halted: {counted(n, 'job')} {verb}"


@dataclass
class Policy:
    """The failure policy and limits of a run."""

    job_failures: str = NODE_FAILURES
    max_attempts: int = 3  # distinct nodes a job may fail on (retiring them) before it is failed
    retries: int = 0  # with job failures: re-runs of a job that exited non-zero or timed out
    max_node_uses: Optional[int] = None  # a slot retires after this many attempts
    max_running: Optional[int] = None  # at most this many slots busy at once
    # slots share connections (ControlMaster): one slot opens a group's connection, the others
    # wait for it (admission.py)
    shared_connections: bool = False
    # at most this many new connections being opened at once (key exchanges in flight); None: no
    # limit. With shared connections only a group's opener opens one; without, every job may
    max_connecting: Optional[int] = None
    sessions_per_connection: Optional[int] = None  # slots of a node sharing one connection
    # a retired node is probed again (a job's filter: let back) this many seconds after it left,
    # the wait doubling each time up to reprobe_max; None: retired nodes stay out
    reprobe: Optional[float] = None
    reprobe_max: float = 600.0
    # with jobs waiting and every node out, how long to wait for one to come back
    reprobe_for: float = 900.0
    # a node whose sshd refused this many handshakes or sessions in a row (TRANSIENT), with no
    # connection accepted in between, is retired; before that each refusal holds the slot back
    refusals_max: int = 10
    refusal_wait: float = 0.25  # the first hold; doubling with each refusal in a row, up to 8 s
    # job failures mode: a node where this many distinct jobs failed that then succeeded on other
    # nodes is sick even when each failure looks like the job's: it is retired (None: never)
    quarantine: Optional[int] = None
    # --timeout N%: a job running past this percentage of the median runtime of the jobs that
    # succeeded (once verdicts.MEDIAN_AFTER have) is a straggler, ended and re-run elsewhere; None: off
    straggler_percent: Optional[float] = None
    halt: Optional["Halt"] = None  # --halt: when the run stops starting jobs (and ends running ones)

    def __post_init__(self):
        if self.job_failures not in (NODE_FAILURES, JOB_FAILURES):
            raise ValueError(f"job_failures must be {NODE_FAILURES!r} or {JOB_FAILURES!r}")
        if self.reprobe is not None and not self.reprobe > 0:
            raise ValueError("reprobe must be a positive number of seconds, or None")


@dataclass(eq=False)  # identity: kept in sets
class NodeState:
    """A node: its slots and whether it is usable."""

    name: str
    slots: List[int] = field(default_factory=list)
    status: str = "up"  # up; retired; probe (retired, its probe due or running)
    reason: str = ""
    jobs: int = 0
    by_job: bool = False  # retired by a job's own non-zero exit, not by an ssh failure
    reinstated: int = 0
    returns: int = 0  # times it came back into the run (its basefiles go again)
    history: List[Absence] = field(default_factory=list)
    next_probe: Optional[float] = None  # when a retired node is probed (or let back) next
    backoff: int = 0  # retirements since it last ran a job well: the wait doubles with each
    permanent: bool = False  # retired by the configuration (authentication, host key): no probe
    said: str = ""  # ssh's own words for what retired it, where ssh said some (events.Finished.said)
    seen_up: bool = False  # it connected at least once in this run
    removed: bool = False  # its node list no longer names it: no new job (running ones finish)
    probe_slot: Optional[int] = None  # the slot running its probe
    # admission's (admission.py):
    refusals: int = 0  # transient refusals in a row (a connection accepted resets it)
    refused: int = 0  # transient refusals in all
    open_limit: Optional[int] = None  # connections it may be opening at once, learned from refusals
    jump_host: Optional[str] = None  # the ProxyJump host its connections go through, once looked up
    jump_known: bool = False  # its worker looked up its ProxyJump host (after a refusal)
    gateway: Optional[str] = None  # the gateway that drives it now (None: the root itself)
    # quarantine's (quarantine.py):
    blamed: set = field(default_factory=set)  # jobs that failed here and succeeded elsewhere
    unconfirmed: set = field(default_factory=set)  # jobs that failed here, their end elsewhere not known yet
    ran: int = 0  # job failures mode: attempts that ran to the job's own end here (quarantine's evidence)
    failed_runs: int = 0  # of those, the ones that failed by the job's exit or timeout
    failed_at: int = 0  # the pool's count of runs when one last failed here

    @property
    def out(self):
        return self.status != "up"


@dataclass
class Slot:
    index: int
    node: str
    uses: int = 0
    busy: Optional[int] = None  # seq of the job it runs
    attempt: int = 0
    retired: bool = False
    removed: bool = False  # its node list no longer has it (a live node file changed)
    # admission's (admission.py):
    group: tuple = ()  # (node, n): the slots sharing one ssh connection
    linked: bool = False  # without shared connections: its connection (session) is up
    hold_until: float = 0.0  # a busy sshd refused it: no job before this time
    jump_round: int = 0  # its jump host's cuts when its handshake began
    limited: bool = False  # its running job has its straggler limit (--timeout N%)
    # its attempt's job went to a ready slot while it connected (busy is then PROBE): its end
    # says only whether its node could be reached
    withdrawn: bool = False
    # lookahead: the job it holds to run next (its seq, attempt and hold number), or None
    after: Optional[int] = None
    after_attempt: int = 0
    after_hold: int = 0


def interleave(hosts):
    """Slot order that spreads load: the first slot of every node, then every second one, ..."""
    seen = {}
    ranked = []
    for i, h in enumerate(hosts):
        k = seen.get(h, 0)
        seen[h] = k + 1
        ranked.append((k, i, h))
    return [h for _, _, h in sorted(ranked)]


class Scheduler:
    """Pending jobs, free slots, retry policy and node retirement."""

    def __init__(self, jobs, slots, policy=None, pinned=None, rng=None):
        """``jobs``: commands (seq = index + 1, or (seq, command) pairs); ``slots``: a node name per slot.

        ``pinned``: optional node name per job: such a job runs on that node only.
        """
        self.policy = policy or Policy()
        self.rng = rng or random.Random()  # the jitter of the holds after a refusal
        self.slots = []
        self.nodes = {}
        self.admission = Admission(self.policy, self.slots, self.nodes, self.rng)
        for node in slots:
            self._new_slot(node)
        self.jobs = {}
        self._with_slot = {}  # seq -> its command, where {%} waits for the slot
        self.queue = JobQueue(self.jobs, self.policy, self.active_nodes)
        self._withdrawn = 0  # slots connecting whose job went elsewhere: the run does not wait for them
        self.ahead = Ahead(self)  # the jobs slots hold to run next (lookahead.py)
        pins = list(pinned) if pinned is not None else [None] * len(jobs)
        for i, job in enumerate(jobs):
            seq, command = job if isinstance(job, tuple) else (i + 1, job)
            if any(m in command for m in MARKS):  # {%}, {host}: they go in when the job starts
                self._with_slot[seq] = command
                command = shown(command)
            res = JobResult(seq, command, node=pins[i], pinned=pins[i] is not None)
            self.jobs[seq] = res
            if res.pinned and res.node not in self.nodes:
                raise ValueError(f"job {seq} pinned to unknown node {res.node!r}")
            self.queue.add(res)
        self._free = dict.fromkeys(s.index for s in self.slots)
        self._busy = 0
        self.interrupted = None  # the reason, once interrupted: running attempts count for nothing
        self.halted = None  # the reason, once --halt's condition was met
        self.stopped = None  # the reason, once no job may start (interrupted, or a write failed)
        self.now = 0.0  # the supervisor's clock (tick): when probes are due
        self.wall = 0.0  # epoch seconds, for the nodes' history
        self.health = Health(self.policy, self.nodes, self._free_slots_of, self._could_run,
                             lambda node: self.quarantine.forget(node), self.admission)
        self.verdicts = Verdicts(self.policy, self.nodes, self.slots, self.admission, self.health)
        self.endings = Endings(self)
        self.quarantine = self.verdicts.quarantine = Quarantine(self.policy, self.nodes, self.slots, self._slot_usable,
                                                                self.queue.next_for, self.health.retire)

    def _new_slot(self, name):
        s = Slot(len(self.slots), name)
        self.slots.append(s)
        node = self.nodes.setdefault(name, NodeState(name))
        self.admission.add_slot(s, node)
        node.slots.append(s.index)
        return s

    def resize(self, wanted):
        """The node list changed (a live node file): ``wanted`` names a node per slot, as at the start.

        A node with more slots than it has gets them (its removed ones back first, then new
        ones); a node with fewer, or none, loses its idle slots first and its busy ones as their
        jobs end: no new job goes there, a running one finishes. Returns (added slot indices,
        number of slots removed). Jobs pinned to nodes (--on-each-node) are not touched.
        """
        want = {}
        for name in wanted:
            want[name] = want.get(name, 0) + 1
        added, removed = [], 0
        for name in list(dict.fromkeys(list(self.nodes) + list(want))):
            node = self.nodes.get(name)
            have = [self.slots[i] for i in node.slots if not self.slots[i].removed] if node else []
            need = want.get(name, 0)
            if need > len(have):
                back = [self.slots[i] for i in node.slots if self.slots[i].removed] if node else []
                mine = []
                for s in back[:need - len(have)]:
                    s.removed = False
                    limit = self.policy.max_node_uses
                    s.retired = limit is not None and s.uses >= limit
                    mine.append(s.index)
                for _ in range(need - len(have) - len(back)):
                    mine.append(self._new_slot(name).index)
                node = self.nodes[name]
                node.removed = False
                for idx in mine:
                    if self._slot_usable(self.slots[idx]) and self.slots[idx].busy is None:
                        self._free[idx] = None
                added += mine
            elif need < len(have):
                for s in sorted(have, key=lambda s: (s.busy is not None, -s.index))[:len(have) - need]:
                    s.removed = s.retired = True
                    self._free.pop(s.index, None)
                    removed += 1
                node.removed = need == 0
        return added, removed

    def tick(self, now, wall=None):
        """The time now (the supervisor's clock, and epoch seconds for the record)."""
        self.now = self.health.now = now
        self.wall = self.health.wall = now if wall is None else wall

    # ---- queries -------------------------------------------------------
    @property
    def busy(self):
        return self._busy

    def active_nodes(self):
        return self.health.active()

    def retired_nodes(self):
        return self.health.retired()

    def said(self):
        """{node: ssh's own words for what retired it} of the retired nodes where ssh said some."""
        return {name: self.nodes[name].said for name in self.health.retired() if self.nodes[name].said}

    def history(self):
        """{node: [Absence, ...]} of the nodes that were out at some time."""
        return self.health.history()

    @property
    def news(self):
        """(what, NodeState) of what happened to nodes since the supervisor last took them."""
        return self.health.news

    @news.setter
    def news(self, value):
        self.health.news = value

    def retire_node(self, name, reason, by_job=False):
        self.health.retire(name, reason, by_job)

    def counts(self):
        c = {SUCCEEDED: 0, FAILED: 0, NOT_RUN: 0}
        for j in self.jobs.values():
            if j.outcome:
                c[j.outcome] += 1
        return c

    def pending(self):
        return len(self.queue)

    def waiting(self):
        """Jobs waiting to start: in the queue, or held by a slot to run next (lookahead.py)."""
        return len(self.queue) + len(self.ahead.holding)

    def work_for(self, name):
        """Whether a job waits that node ``name`` could take (its own under --on-each-node, or one that
        did not fail there): what a promise to probe it again, or let it back, rests on."""
        return self.queue.work_for(name)

    def running(self):
        """{slot index: (node, seq, command)} of the slots running a job (probes not counted)."""
        return {s.index: (s.node, s.busy, self.jobs[s.busy].command) for s in self.slots if s.busy}

    def done(self):
        """True when nothing runs and nothing more can start; leftovers are then marked not run.
        A connection still opening whose job went elsewhere is not waited for: the run's end ends it."""
        if self._busy > self._withdrawn:
            return False
        if self.stopped is None and self.pending():
            if self._usable_slot_exists() or self.health.reinstate(self._usable_slot_exists):
                return False
            if self.health.wait_for_nodes():
                return False
        self._finish_leftovers()
        return True

    def next_due(self):
        """When something the clock brings is due (a probe, the end of the wait for nodes), or None."""
        due = [t for t in (self.health.next_due(), self.admission.next_hold(self.now)) if t is not None]
        return min(due) if due else None

    def _could_run(self, node):
        return any(not self.slots[i].retired and self.queue.next_for(self.slots[i], peek=True) is not None
                   for i in node.slots)

    # ---- assignment ----------------------------------------------------
    def _slot_usable(self, s):
        return not s.retired and self.nodes[s.node].status == "up"

    def free_usable(self):
        """How many usable slots are free."""
        return sum(1 for i in self._free if self._slot_usable(self.slots[i]))

    def occupy(self, slot, seq, attempt):
        """The slot runs job ``seq`` now (its ``attempt``), as its worker started it (lookahead.py)."""
        s = self.slots[slot]
        if s.busy is not None:
            raise ValueError(f"slot {slot} started job {seq} while it runs job {s.busy}")
        s.busy, s.attempt = seq, attempt
        self._free.pop(slot, None)
        self._busy += 1

    def text(self, seq, slot):
        """What slot ``slot`` runs for job ``seq``: its command, with {%} and {host} filled in."""
        s = self.slots[slot]
        return for_slot(self._with_slot[seq], slot, s.node) if seq in self._with_slot else self.jobs[seq].command

    def _usable_slot_exists(self):
        for s in self.slots:
            if self._slot_usable(s) and (s.busy is not None or self.queue.next_for(s, peek=True) is not None):
                return True
        return False

    def assign(self, most=None, prefer=()):
        """Fill free slots (at most ``most`` of them): a list of (slot index, events.Job) to send.

        Slots in ``prefer`` (those with a live worker) are filled first, so that with a limit
        on running jobs the same few workers serve, instead of a new one for each job.
        """
        out = []
        if self.stopped is not None or not self.pending():
            return out
        self.health.due()
        # a job handed to a slot that is gone: the queue's again
        self.queue.unhand(lambda idx: idx in self._free and self._slot_usable(self.slots[idx]))
        limit = self.policy.max_running
        suspects = self.quarantine.suspects()
        straggler = self.straggler_limit()
        order = list(self._free)
        if prefer and limit is not None:
            order = [i for i in order if i in prefer] + [i for i in order if i not in prefer]
        for idx in order:
            if limit is not None and self._busy >= limit:
                break
            s = self.slots[idx]
            node = self.nodes[s.node]
            probe = node.status == "probe"
            if probe and node.probe_slot is None and not s.retired and self._could_run(node):
                pass  # this slot probes its node
            elif not self._slot_usable(s):
                if not probe or s.retired:
                    del self._free[idx]
                continue
            if s.node in suspects or self.admission.waits(s, self.now):
                continue
            plan = self.admission.plan(s, node)
            if plan is None:
                continue  # the connection it would open may not be opened now
            connect, opens = plan
            if probe:
                seq = PROBE
                node.probe_slot = idx
            else:
                seq = self.queue.next_for(s)
                if seq is None:
                    continue
            lookup = self.admission.start(s, node, connect, opens)
            del self._free[idx]
            self._busy += 1
            self.ahead.look_at(idx)
            if probe:
                s.busy, s.attempt = PROBE, 0
                out.append((idx, Job(PROBE, PROBE_COMMAND, 0, connect)))
                continue
            job = self.jobs[seq]
            attempt = len(job.attempts) + 1
            s.busy, s.attempt, s.limited = seq, attempt, straggler is not None
            s.uses += 1
            node.jobs += 1
            # once a jump host refused handshakes, a node not looked up yet is, before it connects
            out.append((idx, Job(seq, self.text(seq, idx), attempt, connect, straggler, lookup)))
            if not self.pending() or (most is not None and len(out) >= most):
                break
        return out

    def withdrawals(self):
        """[(slot, ready slot)]: attempts still opening a connection whose job a ready slot (its
        connection up, nothing to do) could start now (admission.Admission.handovers). Nothing
        waits in the queue then: a job waits for a connecting node no longer than it would for a
        free slot elsewhere."""
        if self.stopped is not None or self.pending() or not self.admission.opening:
            return []
        suspects = self.quarantine.suspects()
        return self.admission.handovers([s for s in (self.slots[i] for i in self._free)
                                         if self._slot_usable(s) and s.node not in suspects], self.jobs, self.now)

    def withdrawn(self, slot, to):
        """Slot ``slot``'s job will not start there (its kind said so): it goes to slot ``to`` alone;
        the slot stays busy connecting, its end judging only its node (``finished``)."""
        s = self.slots[slot]
        seq, s.busy, s.withdrawn = s.busy, PROBE, True
        self._withdrawn += 1
        s.uses -= 1
        self.nodes[s.node].jobs -= 1
        self.queue.hand(to, seq)

    # ---- events --------------------------------------------------------
    def has_future(self, slot):
        """Whether the slot may get another job: False once it is retired, its node is, or (jobs
        pinned to nodes, --on-each-node) its node has none left. Its worker can then go."""
        s = self.slots[slot]
        if s.retired or self.nodes[s.node].out or self.stopped is not None:
            return False
        if self.queue.has_own():
            return self.queue.own(s.node)
        return bool(self.pending())

    def connected(self, slot):
        """The slot's connection is up (see Admission.connected)."""
        s = self.slots[slot]
        self.admission.connected(s, self.nodes[s.node])
        if s.busy:
            self.ahead.look_at(slot)

    def straggler_limit(self):
        return self.verdicts.straggler_limit()

    def unlimited(self):
        return self.verdicts.unlimited()

    def limit_given(self, slot):
        self.slots[slot].limited = True

    @property
    def connecting(self):
        """How many attempts are opening a connection now (counted only under max_connecting)."""
        return self.admission.opening

    def finished(self, ev):
        """Record the end of an attempt (an events.Finished); returns the Attempt (a job log row), or
        None for a probe (endings.py)."""
        return self.endings.finished(ev)

    def deferred(self, ev):
        """The attempt was not started (an events.Deferred): its job goes back (endings.py)."""
        self.endings.deferred(ev)

    def worker_died(self, slot, start=0.0, runtime=0.0):
        """The slot's worker process died: its job goes back (endings.py); the Attempt, or None."""
        return self.endings.worker_died(slot, start, runtime)

    def vacate(self, slot):
        """The slot's attempt ended: it runs nothing now. Its Slot and its NodeState."""
        s = self.slots[slot]
        if s.busy is None:
            raise ValueError(f"slot {slot} finished but runs no job")
        s.busy = None
        self._busy -= 1
        return s, self.nodes[s.node]

    def unwithdraw(self, s):
        """The end of a slot's attempt whose job went elsewhere (``withdrawn``) came."""
        s.withdrawn = False
        self._withdrawn -= 1

    def _free_slots_of(self, node):
        """The node's idle slots that are not retired are free again (it is back, or its probe is due)."""
        for idx in node.slots:
            s = self.slots[idx]
            if not s.retired and s.busy is None:
                self._free[idx] = None

    def release(self, s):
        """The slot may take another job (unless max_node_uses retires it, or its node is out)."""
        limit = self.policy.max_node_uses
        if limit is not None and s.uses >= limit:
            s.retired = True
        if self._slot_usable(s) or (not s.retired and self.nodes[s.node].status == "probe"):
            self._free[s.index] = None

    def slot_lost(self, slot):
        """The slot's worker could not be started: the slot is out for the rest of the run.

        Its job never ran: it goes back to the front of its queue, costing no attempt.
        """
        s = self.slots[slot]
        s.retired = True
        self._free.pop(slot, None)
        self.unassign(slot)

    def unassign(self, slot):
        """The slot's job could not be started after all: back to the front of its queue, at no cost."""
        s = self.slots[slot]
        if s.busy is None:
            return
        if self._slot_usable(s):
            self._free[slot] = None
        seq, s.busy = s.busy, None
        self._busy -= 1
        self.admission.ended(s, connected=False)
        if seq == PROBE:
            self.nodes[s.node].probe_slot = None  # another slot (or this one, later) probes
            return
        s.uses -= 1
        self.nodes[s.node].jobs -= 1
        self.queue.front(seq)

    def interrupt(self, reason="interrupted"):
        """Stop starting jobs; what is pending now will not run, what runs now ends interrupted."""
        if self.interrupted is None:
            self.interrupted = reason
        self.stop(reason)

    def halt_check(self, job):
        """A job ended (``job.outcome`` set): whether --halt's condition is met now."""
        halt = self.policy.halt
        if halt is None or self.halted is not None or job.outcome is None:
            return
        c = self.counts()
        if halt.reached(c[SUCCEEDED], c[FAILED], len(self.jobs)):
            self.halted = halt.reason(c[SUCCEEDED], c[FAILED])
            if halt.when == "now":
                self.interrupt(self.halted)
            else:
                self.stop(self.halted)

    def stop(self, reason):
        """Start no more jobs (those running end as they will); what is pending will not run."""
        if self.stopped is None:
            self.stopped = reason

    def _finish_leftovers(self):
        self.ahead.settle()
        gave_up = self.health.gave_up
        why = self.stopped or "no usable node left" + (f" ({gave_up})" if gave_up else "")
        for seq, pinned in self.queue.leftovers():
            j = self.jobs[seq]
            j.outcome = NOT_RUN
            if pinned is None:
                j.reason = why if self.stopped or not j.attempts else f"{why} (last: {j.reason})"
            elif self.stopped:
                j.reason = self.stopped
            elif self.nodes[pinned].out:
                j.reason = f"node {pinned} retired ({self.nodes[pinned].reason})"
            else:
                j.reason = f"no slot of node {pinned} could run it"
