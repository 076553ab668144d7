"""Picklable messages between the supervisor and its workers.

Supervisor -> worker: ``Job`` (run this), ``Limit`` (while it runs: a straggler's limit) or
``None`` (exit).
Worker -> supervisor: ``Connected``, ``Output``, ``Finished``, ``Notice``.
"""
from dataclasses import dataclass
from typing import Optional

# Finished.ssh_error of an attempt the worker did not start: the node is behind a jump host that
# refused handshakes. The job waits for its turn under that host's limit, as if it was not sent.
DEFERRED = "behind a busy jump host"


@dataclass(frozen=True)
class Job:
    """One attempt of a job, sent to the worker of one slot."""

    seq: int
    command: str
    attempt: int = 1
    connect: bool = False  # open the node's shared connection first (the node's probe)
    limit: Optional[float] = None  # --timeout N%: end it as a straggler after this many seconds
    lookup: bool = False  # a jump host refused handshakes: first see whether the node is behind one


@dataclass(frozen=True)
class Limit:
    """Supervisor -> worker while a job runs: end it as a straggler once it has run this long."""

    seconds: float


@dataclass(frozen=True)
class Connected:
    """The slot's node accepted the shared (ControlMaster) connection."""

    slot: int


@dataclass(frozen=True)
class Notice:
    """Something the slot's worker decided that a user may want to know (shown under -v)."""

    slot: int
    text: str


@dataclass(frozen=True)
class Output:
    """Complete lines (bytes ending in newline, or the last bytes at EOF) of a job."""

    slot: int
    seq: int
    stream: int  # 1 stdout, 2 stderr
    data: bytes


@dataclass(frozen=True)
class Finished:
    """An attempt ended: the exit status of ssh and what is known of why."""

    slot: int
    seq: int
    exit: int  # ssh's exit status; negative: killed by that signal
    start: float  # epoch seconds
    runtime: float
    timed_out: object = False  # or why: "timeout", "idle timeout", "straggler"
    ssh_error: Optional[str] = None  # classified ssh failure (refused, authentication, ...)
    never_ran: bool = False  # the connection failed before the command could start
    started: bool = False  # the remote wrapper's start mark was seen: the job ran
    # the node's ProxyJump host ("" for none), once the worker looked it up (after a refused handshake)
    gate: Optional[str] = None
    # the job started and its end mark never came, over a connection still alive: why it is taken
    # for the job's failure (it ended what writes the mark: its wrapper, the job loop)
    died: Optional[str] = None
