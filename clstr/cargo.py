"""What the supervisor adds to a job as it starts, and takes from its end: the job's files
(transfer.py: what goes with it, the node's basefiles on its first job there, where what it
brings back is placed, the --cleanup at the run's end) and sudo's password (sudo.py: asked once
a run, the first time a node's sudo asks for one). No process of its own but the cleanup's."""
import dataclasses

from . import ssh, transfer
from .verdicts import succeeds


class Cargo:
    """A run's cargo (``opt``: its RunOptions; ``sched``: its Scheduler; ``log``: its log)."""

    def __init__(self, opt, sched, log):
        self.opt = opt
        self.sched = sched
        self.log = log
        self.based = {}  # slot -> its node's returns when it last sent the basefiles (no shared connections)
        self.homes = {}  # where each file brought back was placed here -> its job (never two jobs' files)
        self.sudo_asked = False  # --sudo: the run asked for sudo's password (a node's sudo asked)
        self.sudo_password = None  # what it was given (None: none)

    def load(self, idx, job):
        """The job as slot ``idx`` starts it: with its files, and sudo's password once asked."""
        if self.opt.files is not None:
            job = self._with_files(idx, job)
        if self.sudo_asked:
            job = dataclasses.replace(job, sudo_asked=True, sudo_password=self.sudo_password)
        return job

    def _with_files(self, idx, job):
        """The job with its files; the run's basefiles go first on a node's first job since it joined
        the run (or came back): with shared connections, its connection's opener; else each slot's."""
        node = self.sched.nodes[self.sched.slots[idx].node]
        first = job.connect if self.opt.multiplex else self.based.get(idx) != node.returns
        self.based[idx] = node.returns
        return dataclasses.replace(job, files=transfer.for_node(self.opt.job_files.get(job.seq), node.name),
                                   basefiles=bool(self.opt.files.basefiles) and first)

    def unload(self, ev):
        """An attempt's Finished, its files brought back placed (transfer.placed)."""
        return transfer.placed(ev, succeeds(ev), self.homes)

    def ask_sudo(self, node, stopping):
        """--sudo: a node's sudo asks for a password: ask for it, once a run (jobs carry it from
        now on, and a slot whose node asks is given it). ``stopping()``: the run is ending."""
        if self.sudo_asked:
            return
        self.sudo_asked = True
        self.sudo_password = self.opt.ask_sudo(node, stopping)
        if self.sudo_password is None:
            self.log("sudo: no password given: the nodes whose sudo asks for one run nothing")

    def clean(self, kinds, control, env, clock):
        """The run's end: --cleanup's basefiles and --workdir ... go from each node that ran something,
        over its shared connection where it has one, all at once (transfer.clean_nodes)."""
        files = self.opt.files
        if files is None:
            return
        if files.cleanup and (files.basefiles or files.fresh_workdir):
            line = ssh.clean_line(self.opt.ssh.mark, files.workdir if files.fresh_workdir else None,
                                  [b.remote for b in files.basefiles])
            ran = {a.node for j in self.sched.jobs.values() for a in j.attempts}
            for kind in kinds:
                ran -= kind.clean(ran, line)  # the nodes behind a gateway are cleaned up by it
            transfer.clean_nodes(self.opt.ssh, [(node, 0) for node in sorted(ran)], line,
                                 control.path if control else lambda group: None, env, clock)
