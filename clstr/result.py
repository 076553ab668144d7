"""What a run returns: each job (JobResult) with its attempts (Attempt), each node's absences
(Absence), and the whole (RunResult); the outcome names.

Plain values, no behaviour but their views: the scheduler fills them, the command line, the
library's callers, the job log, --json and the report read them.
"""
import enum
import signal
from dataclasses import dataclass, field
from typing import Optional

# How a job ended (JobResult.outcome), and what became of an attempt that did not end it
# (Attempt.outcome): the words of the summary, the job log, --json and the report.
SUCCEEDED = "succeeded"
FAILED = "failed"
NOT_RUN = "not run"
REQUEUED = "requeued"  # the attempt ended and the job went back to the queue
INTERRUPTED = "interrupted"  # the attempt was ended by Ctrl-C, SIGTERM or SIGHUP


class Ending(enum.Enum):
    """How an attempt ended: what the worker saw and what the scheduler made of it.

    Everything downstream reads this, never the reason text: the job log's Exitval and Signal
    columns, -S, the exit status.
    """

    OK = "ok"  # exit 0
    EXIT = "exit"  # the job's own non-zero status (or it ended what writes its end mark)
    TIMEOUT = "timeout"  # --timeout SECONDS
    IDLE_TIMEOUT = "idle timeout"  # --idle-timeout
    STRAGGLER = "straggler"  # --timeout N%
    LOST = "lost"  # it ran and its connection was lost
    NEVER_RAN = "never ran"  # ssh failed before the job started (the node's fault alone)
    BUSY = "busy"  # a busy sshd refused the handshake or the session: tried again, at no cost
    TRANSFER = "transfer"  # a file to send or bring back could not be (named with its cause)
    # a file failed by no fault of its node: one brought back could not be written or placed here,
    # or the job changed it while it was brought back; the job fails, its node stays
    FILE_FAILED = "file failed"
    WORKER_DIED = "worker died"  # the slot's worker process died under it
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM or SIGHUP ended it

    @property
    def timed_out(self):
        """Ended by one of clstr's time limits (GNU parallel's job log says -1, signal 15)."""
        return self in (Ending.TIMEOUT, Ending.IDLE_TIMEOUT, Ending.STRAGGLER)


@dataclass
class Attempt:
    """One finished attempt of a job: a row of the job log."""

    seq: int
    node: str
    attempt: int
    start: float
    runtime: float
    exit: int
    outcome: str  # SUCCEEDED, FAILED, REQUEUED, INTERRUPTED
    reason: str
    command: str
    slot: int = -1  # the slot it ran on
    ending: Ending = Ending.OK  # how it ended (the reason says it in words)
    sent: int = 0  # bytes of files sent for it (--transferfile, --basefile)
    received: int = 0  # bytes of files brought back (--return)
    transfer: float = 0.0  # seconds its transfers took
    # seconds it took to open its connection or session before the job started (None: not known,
    # without remote cleanup); ``runtime`` is the job's own, from its start to its end
    connect: Optional[float] = None
    began: Optional[float] = None  # seconds from the attempt's start to the job's start (None: not known)
    stderr: Optional[str] = None  # the last lines it wrote to stderr, where it did not succeed (output.Tails)


class JobResult:
    """A job and how it ended.

    A plain class with slots: a run may hold millions of these, and a job
    that never fails shares one empty ``failed_nodes``.
    """

    __slots__ = ("seq", "command", "node", "pinned", "outcome", "reason", "exit", "attempts", "failed_nodes",
                 "worker_deaths", "own_failures", "node_failures")

    def __init__(self, seq, command, node=None, pinned=False):
        self.seq = seq
        self.command = command
        self.node = node  # pinned node (--on-each-node), else the node of the last attempt
        self.pinned = pinned
        self.outcome = None
        self.reason = ""
        self.exit = None
        self.attempts = []
        self.failed_nodes = frozenset()  # nodes it failed on (attempt count source)
        self.worker_deaths = 0
        self.own_failures = 0  # attempts that ran and failed by the job's own exit or timeout
        self.node_failures = 0  # attempts that ran and cost their node (a filter's exit, a connection lost)

    def __repr__(self):
        return f"JobResult({self.seq}, {self.command!r}, outcome={self.outcome!r}, reason={self.reason!r})"

    @property
    def runtime(self):
        return self.attempts[-1].runtime if self.attempts else 0.0

    @property
    def ending(self):
        """How its last attempt ended (None if none ran)."""
        return self.attempts[-1].ending if self.attempts else None


@dataclass
class Absence:
    """A time a node was out of the run: when it left and why, when it came back (None: it did not)."""

    left: float
    reason: str
    back: Optional[float] = None
    probes: int = 0  # probes that failed while it was out




@dataclass
class RunResult:
    """How every job ended, which nodes were retired and why; the interface of a run."""

    jobs: list
    retired_nodes: dict
    signal: Optional[int] = None
    skipped: int = 0  # jobs a --resume found done already
    error: Optional[str] = None  # a write that failed mid-run (no job started after it)
    history: dict = field(default_factory=dict)  # node -> [scheduler.Absence]: when it left, why, when back
    permanent: list = field(default_factory=list)  # nodes out for their configuration (not probed again)
    removed: list = field(default_factory=list)  # nodes a live node list dropped during the run
    refusals: dict = field(default_factory=dict)  # node -> handshakes or sessions its busy sshd refused
    jump_hosts: dict = field(default_factory=dict)  # ProxyJump host -> {"nodes", "refused", "open_limit"}
    slots: list = field(default_factory=list)  # the node of each slot (an attempt's "slot" indexes it)
    started: Optional[float] = None  # epoch seconds the run started and ended
    ended: Optional[float] = None
    halted: Optional[str] = None  # why --halt stopped the run ("halted: 1 job failed"), or None
    said: dict = field(default_factory=dict)  # retired node -> ssh's own words for why ("Connection refused")
    halted_by: Optional[str] = None  # its condition: "fail", "success" or "done"
    gateways: dict = field(default_factory=dict)  # gateway -> {"state", "why", "losses", "info", "nodes"}
    routes: dict = field(default_factory=dict)  # node some gateway reaches -> the gateway driving it at the end (None: the root)

    def _with(self, outcome):
        return [j for j in self.jobs if j.outcome == outcome]

    @property
    def succeeded(self):
        return self._with(SUCCEEDED)

    @property
    def failed(self):
        return self._with(FAILED)

    @property
    def not_run(self):
        return self._with(NOT_RUN)

    def excused(self, job):
        """A job not run because --halt success=... or done=... was met: skipped as asked, it does
        not make the run a failure (GNU parallel exits 0 then)."""
        return (self.halted_by in ("success", "done") and job.outcome == NOT_RUN and job.reason == self.halted)

    @property
    def ok(self):
        return self.signal is None and self.error is None and all(
            j.outcome == SUCCEEDED or self.excused(j) for j in self.jobs)

    def slowest(self, n=10):
        """The ``n`` jobs whose last attempt ran longest (jobs that ran to their end: an attempt
        cut off by Ctrl-C tells nothing of its job), longest first, by the jobs' own runtimes."""
        ran = [j for j in self.jobs if j.attempts and j.attempts[-1].outcome != INTERRUPTED
               and j.attempts[-1].ending not in (Ending.NEVER_RAN, Ending.BUSY)]
        return sorted(ran, key=lambda j: (-j.attempts[-1].runtime, j.seq))[:n]

    def to_dict(self, max_exit=False):
        """The machine-readable summary (what --json writes)."""
        nodes = {}
        for j in self.jobs:
            for a in j.attempts:
                n = nodes.setdefault(a.node, {"attempts": 0, "succeeded": 0})
                n["attempts"] += 1
                n["succeeded"] += a.outcome == SUCCEEDED
        for name in list(self.retired_nodes) + list(self.history) + list(self.removed):
            nodes.setdefault(name, {"attempts": 0, "succeeded": 0})
        for name, n in nodes.items():
            n["retired"] = name in self.retired_nodes
            n["reason"] = self.retired_nodes.get(name, "")
            if name in self.said:
                n["ssh_said"] = self.said[name]
            n["configuration_error"] = name in self.permanent
            n["removed"] = name in self.removed
            n["busy_refusals"] = self.refusals.get(name, 0)
            if self.gateways:
                n["gateway"] = self.routes.get(name)
            n["out"] = [{"left": round(a.left, 3), "reason": a.reason,
                         "back": None if a.back is None else round(a.back, 3), "failed_probes": a.probes}
                        for a in self.history.get(name, ())]
        return {
            "exit_status": self.exit_code(max_exit),
            "interrupted_by": signal.Signals(self.signal).name if self.signal else None,
            "halted": self.halted,
            "error": self.error,
            "counts": {"jobs": len(self.jobs), "succeeded": len(self.succeeded), "failed": len(self.failed),
                       "not_run": len(self.not_run), "skipped": self.skipped},
            "jobs": [{
                "seq": j.seq, "command": j.command, "outcome": j.outcome, "reason": j.reason,
                "node": j.node, "exit": j.exit, "runtime": round(j.runtime, 3), "attempts": [
                    dict({"node": a.node, "slot": a.slot, "attempt": a.attempt, "start": round(a.start, 3),
                          "runtime": round(a.runtime, 3),
                          "connect": None if a.connect is None else round(a.connect, 3),
                          "began": None if a.began is None else round(a.began, 3), "ending": a.ending.value,
                          "exit": a.exit, "outcome": a.outcome, "reason": a.reason},
                         **({"sent": a.sent, "received": a.received, "transfer": round(a.transfer, 3)}
                            if a.sent or a.received or a.transfer else {}),
                         **({"stderr": a.stderr} if a.stderr else {}))
                    for a in j.attempts]} for j in self.jobs],
            "nodes": nodes,
            "jump_hosts": self.jump_hosts,
            "gateways": self.gateways,
            "slowest": [{"seq": j.seq, "node": j.attempts[-1].node, "runtime": round(j.attempts[-1].runtime, 3),
                         "outcome": j.outcome, "command": j.command} for j in self.slowest()],
            "slots": list(self.slots),
            "started": None if self.started is None else round(self.started, 3),
            "ended": None if self.ended is None else round(self.ended, 3),
        }

    def exit_code(self, max_exit=False):
        """0 all succeeded; 1 some failed or not run; 128+N interrupted by signal N.

        ``max_exit`` (pdsh's and clush's -S): the largest exit status of the jobs instead,
        255 for a job not run, timed out or ended by ssh's failure.
        """
        if self.signal is not None:
            return 128 + self.signal
        if not max_exit:
            return 0 if self.ok else 1
        worst = 1 if self.error else 0
        for j in self.jobs:
            if j.outcome == SUCCEEDED or self.excused(j):
                continue
            bad = j.outcome == NOT_RUN or j.exit is None or j.exit < 0 or (j.ending is not None and j.ending.timed_out)
            worst = max(worst, 255 if bad else min(j.exit, 255) or 1)
        return worst


def of_run(sched, signal, error, started, ended, gw=None):
    """The RunResult of a run as its scheduler.Scheduler left it: ``signal`` that stopped it (or
    None), the write ``error`` that did, when it started and ended (epoch), its gateways ``gw``."""
    nodes = sched.nodes.values()
    return RunResult(jobs=sorted(sched.jobs.values(), key=lambda j: j.seq),
                     retired_nodes=sched.retired_nodes(), said=sched.said(), signal=signal, error=error,
                     refusals={n.name: n.refused for n in nodes if n.refused},
                     jump_hosts={g.name: {"nodes": sorted(g.nodes), "refused": g.refused,
                                          "open_limit": None if g.open_limit is None else int(g.open_limit)}
                                 for g in sched.admission.jump_hosts.values()},
                     history=sched.history(), removed=[n.name for n in nodes if n.removed],
                     slots=[s.node for s in sched.slots], started=started, ended=ended,
                     permanent=[n.name for n in nodes if n.out and n.permanent],
                     halted=sched.halted, halted_by=sched.policy.halt.what if sched.halted else None,
                     gateways=gw.states() if gw else {}, routes=gw.route_of_nodes() if gw else {})
