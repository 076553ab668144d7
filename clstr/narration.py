"""What a run says on stderr as it goes, in words: a node that left the run, came back, failed a
probe; under -v each job's end, a job that moved to a ready slot or waits for a turn; the jobs
running (SIGUSR1); the connections the run did not wait for. The supervisor (supervisor.py) decides
and acts; this only says, through its ``log`` (a line each), with the scheduler's facts."""
import time

from . import hostlist, transports
from .status import duration
from .words import counted


def secs(seconds):
    return duration(seconds, minutes=False)


class Narrator:
    """``log(line)``: the run's log; ``sched``: its scheduler.Scheduler; ``clock``: its monotonic clock."""

    def __init__(self, log, verbose, sched, clock):
        self.log = log
        self.verbose = verbose
        self.sched = sched
        self.clock = clock
        self.presumed_said = False  # the line on a job's exit presuming its node broken, said once a run

    def node(self, what, node):
        """A node's news (scheduler.news): it was retired, came back, or (-v) failed a probe."""
        if what == "retired":
            self.log(f"node {node.name} retired: {node.reason}" + self._next_probe(node))
            if node.by_job and not self.presumed_said:
                self.presumed_said = True  # once a run: the seed's contract, and the way out of it
                self.log("(a job's non-zero exit presumes its node broken, as in the original clstr: the job "
                         "moves to another node; --job-failures job makes it the job's own failure)")
        elif what == "back":
            gone = node.history[-1]
            self.log(f"node {node.name} is back after {secs(gone.back - gone.left)} out ({gone.reason})")
        elif self.verbose:
            self.log(f"node {node.name}: probe failed" + self._next_probe(node))

    def _next_probe(self, node):
        if node.permanent:
            return "; a configuration error, not probed again"
        if node.next_probe is None:
            return ""
        if self.sched.stopped is not None or not self.sched.work_for(node.name):
            return ""  # nothing waits that it could take: no promise the run may not keep
        verb = "let back" if node.by_job else "probed again"
        # a run whose jobs all end elsewhere first ends without it: the promise says so
        return f"; {verb} in {secs(node.next_probe - self.clock())} if jobs still wait"

    def ended(self, att):
        """-v: an attempt ended."""
        if self.verbose:
            self.log(f"job {att.seq} on {transports.shown(att.node)}: {att.outcome}"
                     + (f" ({att.reason})" if att.reason else ""))

    def deferred(self, ev, node):
        """-v: an attempt did not start (events.Deferred)."""
        if not self.verbose:
            return
        if ev.password:
            self.log(f"job {ev.seq} on {node}: not started: sudo asks for a password")
        else:
            self.log(f"job {ev.seq} on {node}: not started: behind jump host {ev.jump_host}, which refused "
                     "handshakes; it waits for a turn through it")

    def handed(self, seq, node, waited, to):
        """-v: a job went from a slot still connecting to ``to``'s, whose connection is up."""
        if self.verbose:
            self.log(f"job {seq}: {node} is still connecting after {secs(waited)}; the job goes to {to}, "
                     "whose connection is up")

    def unwaited(self, started):
        """The run's end: the connections still opening whose job went elsewhere (``started``: each
        slot's start, epoch seconds), a line a node, of a node that never connected in the run. One
        more session of a node that did (a busy sshd refusing some, a slot given a job at the tail)
        says nothing of the node."""
        since = {}
        for s in self.sched.slots:
            if s.withdrawn and not self.sched.nodes[s.node].seen_up:
                since[s.node] = max(since.get(s.node, 0.0), time.time() - started[s.index])
        for node, seconds in since.items():
            self.log(f"node {node}: still connecting after {secs(seconds)} when the run ended (its job ran elsewhere)")

    def node_list(self, added, removed):
        """A live node list changed: slots ``added`` (indices) and ``removed`` (a count)."""
        if added or removed:
            names = hostlist.fold(list(dict.fromkeys(self.sched.slots[i].node for i in added))) if added else ""
            self.log(f"node list changed: {counted(len(added), 'slot')} added" + (f" ({names})" if names else "")
                     + f", {removed} removed")

    def running(self, started):
        """SIGUSR1: the jobs running now, and for how long."""
        now = time.time()
        running = self.sched.running()
        self.log(f"{counted(len(running), 'job')} running:")
        for idx, (node, seq, cmd) in sorted(running.items()):
            self.log(f"  {node}: job {seq} {cmd!r}, running for {now - started[idx]:.1f}s")
