"""What a run is given: Options, as the user gives them; RunOptions, as the run's parts take them."""
import difflib
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Optional, Sequence

from .scheduler import Policy
from .ssh import SshConfig


@dataclass
class RunOptions:
    """Everything a run needs besides its jobs and nodes."""

    ssh: SshConfig = field(default_factory=SshConfig)
    policy: Policy = field(default_factory=Policy)
    timeout: Optional[float] = None  # per attempt
    idle_timeout: Optional[float] = None  # per attempt: the longest silence
    multiplex: bool = True
    ssh_delay: float = 0.0  # at least this many seconds between new connections
    active_nodes: Optional[str] = None
    state: Optional[str] = None  # the --state file
    node_source: Optional[object] = None  # a nodesource.NodeSource: the node list is live
    joblog: Optional[str] = None
    files: Optional[object] = None  # transfer.Files: the work directory, cleanup, basefiles
    job_files: dict = field(default_factory=dict)  # seq -> transfer.JobFiles: each job's files to send and bring back
    verbose: bool = False
    persist: Optional[float] = None
    routes: Optional[object] = None  # routes.Routes: the gateways and the nodes each reaches
    gateway_python: str = "python3"  # the command that runs clstr on a gateway
    gateway_fallback: str = "direct"  # a node whose gateways are all down: driven directly, or "none"
    one_job_slots: bool = False  # every slot gets one job (--on-each-node): its worker may be its ssh
    # --sudo: asked for sudo's password once, when a node's sudo first asks (None: no sudo)
    ask_sudo: Optional[Callable[[], Optional[str]]] = field(default=None, repr=False)


CONNECT_TIMEOUT = 10.0  # seconds, where neither the caller nor a profile says


@dataclass(frozen=True)
class Options:
    """Every option of a run, one list for the command line, ``clstr.run`` and profiles.

    The command line fills it from argparse (its dests are these names), the library from keyword
    arguments (``Options.of``), profiles by ``nodes.Settings.apply``; ``api.Run`` checks it and
    turns it into what the run's parts take (``RunOptions``, ``Policy``, ``SshConfig``).
    """

    # which nodes (besides the host patterns): exclusions, profile files, a live node list
    exclude: Sequence[str] = ()
    slots: Optional[int] = None  # every node this many slots, however it was listed
    profiles: Sequence[str] = ()  # profile files searched before the default ones
    inventories: Sequence[str] = ()  # Ansible inventories: @group names their groups, their hosts' ssh targets
    node_source: Optional[object] = None  # a nodesource-like object: node files read again when they change
    # what runs
    on_each_node: Optional[str] = None  # -E: this command once on every node instead of jobs
    inputs: Optional[Sequence] = None  # the ::: values of each job, for --tf/--return templates
    env: Sequence[str] = ()  # variable names or globs exported to every job
    sudo: bool = False  # every job under sudo on its node, as root or ``sudo_user`` (sudo.py)
    sudo_user: Optional[str] = None  # the user jobs run as under sudo (implies ``sudo``)
    # asked for sudo's password once a node's sudo asks for one: its answer, or None for none
    # (None here: the terminal is asked, without echo)
    sudo_password: Optional[Callable[[], Optional[str]]] = field(default=None, repr=False)
    halt: Optional[str] = None  # GNU parallel's --halt WHEN,WHAT=N
    # copy and gather (clush -c/--rcopy, pdcp/rpdcp): a run of its own, a job on each node
    copy: Sequence[str] = ()  # files and directories sent to every node (a trailing / : a directory's contents)
    rcopy: Sequence[str] = ()  # files brought back from every node, as DEST/NAME.NODE
    dest: Optional[str] = None  # where --copy puts them on the nodes, --rcopy here (default: the path's directory)
    preserve: bool = False  # --copy/--rcopy keep each file's modification time and mode (clush -p, pdcp -p)
    # files to the node and back
    transferfile: Sequence[str] = ()
    returnfile: Sequence[str] = ()
    cleanup: bool = False
    basefile: Sequence[str] = ()
    workdir: Optional[str] = None
    # failures and limits
    job_failures: str = "node"  # what a non-zero exit means: the node is broken, or the job failed
    max_attempts: int = 3
    retries: int = 0
    quarantine: int = 3
    max_node_uses: Optional[int] = None
    max_nodes: Optional[int] = None
    max_connecting: Optional[int] = 32
    timeout: Optional[float] = None
    timeout_percent: Optional[float] = None
    idle_timeout: Optional[float] = None
    reprobe: Optional[float] = 30.0
    reprobe_for: float = 900.0
    # the job log
    joblog: Optional[str] = None
    resume: bool = False
    resume_failed: bool = False
    # output and monitoring
    stdout: Optional[object] = None  # a stream; None: this process's; False: discarded
    stderr: Optional[object] = None
    tag: bool = False
    tag_job: bool = False
    group: bool = False
    output_dir: Optional[str] = None
    gather: bool = False
    status: bool = False
    bar: bool = False
    verbose: bool = False
    log: Optional[Callable[[str], None]] = None  # where clstr's own lines go (default: stderr)
    active_nodes: Optional[str] = None
    state: Optional[str] = None
    # ssh and connections
    ssh: Optional[str] = None  # the ssh command and its leading arguments (None: "ssh", or a profile's)
    ssh_options: Sequence[str] = ()
    connect_timeout: Optional[float] = None  # None: a profile's, or CONNECT_TIMEOUT
    alive_interval: int = 5
    alive_count: int = 3
    remote_cleanup: bool = True
    pipeline: bool = True
    multiplex: bool = True
    sessions_per_connection: int = 8
    ssh_delay: float = 0.0
    persist: Optional[float] = None
    slurm: bool = False  # reach the nodes (default: the allocation's) by Slurm job steps (slurm.py)
    connect: Optional[str] = None  # a command that runs its arguments on the node instead of ssh: '... {host}'
    # gateways
    gateways: Optional[object] = None  # gateway -> node patterns, or a routes.Routes
    gateway_python: str = "python3"
    gateway_fallback: str = "direct"

    @classmethod
    def names(cls):
        """The options' names, in the order above."""
        return [f.name for f in fields(cls)]

    @classmethod
    def of(cls, given, caller="clstr.run"):
        """The Options of keyword arguments; an unknown name is a TypeError naming the nearest."""
        cls.known(given, caller)
        return cls(**given)

    @classmethod
    def known(cls, given, caller="clstr.run"):
        """Raise TypeError for a name in ``given`` that is no option, naming the nearest ones."""
        names = cls.names()
        for key in given:
            if key not in names:
                near = difflib.get_close_matches(key, names, n=2, cutoff=0.6)
                hint = f" (did you mean {' or '.join(near)}?)" if near else ""
                raise TypeError(f"{caller}: unknown option {key!r}{hint}; the options are listed in "
                                "docs/library.md")

    def but(self, **changes):
        """A copy with these options changed (names checked as ``of`` does)."""
        self.known(changes)
        return replace(self, **changes)
