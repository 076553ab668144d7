"""What a run is given besides its jobs and nodes: RunOptions."""
from dataclasses import dataclass, field
from typing import Optional

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
    one_job_slots: bool = False  # every slot gets one job (--on-each-node): its worker may be its ssh  # --persist: shared connections outlive the run this long idle
