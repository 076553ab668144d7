"""Picklable messages between the supervisor and its workers.

Supervisor -> worker: ``Job`` (run this; or, held, run it next), ``Limit`` (while it runs: a
straggler's limit), ``Recall`` (the held job goes back) or ``None`` (exit).
Worker -> supervisor: ``Connected``, ``Output``, ``Finished``, ``Deferred``, ``Notice``, ``Recalled``.
"""
from dataclasses import dataclass, field
from typing import Optional

from .result import Ending

PROBE = 0  # the seq of a probe: a retired node's attempt to come back (jobs count from 1)


@dataclass(frozen=True)
class Job:
    """One attempt of a job, sent to the worker of one slot."""

    seq: int
    command: str
    attempt: int = 1
    connect: bool = False  # open the shared connection of its group first (it is the opener)
    limit: Optional[float] = None  # --timeout N%: end it as a straggler after this many seconds
    lookup: bool = False  # a jump host refused handshakes: first see whether the node is behind one
    files: Optional[object] = None  # transfer.JobFiles: files to send before it and bring back after
    basefiles: bool = False  # send the run's basefiles first (the node's first job since it joined)
    # --sudo: whether this run asked for sudo's password yet, and what it was given (None: none);
    # sent on only to a node whose sudo asked for it (sudo.py), never shown
    sudo_asked: bool = False
    sudo_password: Optional[str] = field(default=None, repr=False)
    # held (a job of lookahead): the slot runs it next, as soon as its job ``after`` ends with status
    # 0, if it can still take it from the board under ``hold`` (the supervisor may take it back)
    hold: int = 0
    after: int = 0


@dataclass(frozen=True)
class Limit:
    """Supervisor -> worker while a job runs: end it as a straggler once it has run this long."""

    seconds: float


@dataclass(frozen=True)
class Recall:
    """Supervisor -> worker while a job runs: the job held as ``hold`` goes back to the queue if it
    has not started (lookahead.py); a job sent ahead down the session is recalled there."""

    hold: int


@dataclass(frozen=True)
class Recalled:
    """Worker -> supervisor: the recalled job sent ahead will not start; its hold may be taken back."""

    slot: int


@dataclass(frozen=True)
class Connected:
    """The slot's node accepted the shared (ControlMaster) connection."""

    slot: int
    reused: Optional[bool] = None  # --persist: it found a persisted master (True) or opened one (False)


# What the Notice of a slot whose persisted master was dead says: ssh's own fallback took the
# job over a connection of its own
REPLACED = "its persisted connection was dead: the job went over a connection of its own"


@dataclass(frozen=True)
class Notice:
    """Something the slot's worker decided that a user may want to know (shown under -v);
    ``replaced``: the slot's persisted master was found dead (counted as opened, not reused)."""

    slot: int
    text: str
    replaced: bool = False


@dataclass(frozen=True)
class FileNamed:
    """A reason that names one of the attempt's files, kept as data: a gateway's paths are not
    the root's, and each end names the file its own way (``render``).

    ``side``: "send", "basefile" or "return"; ``what``: the rest of the reason (its words after the
    file's name); ``there``: the file failed on the machine that moved it (its disk, its
    directory), said "on <that machine>"; ``path``: the file's name on that machine, where it is
    known; ``k``: its place among the job's sends or returns or the run's basefiles (a gateway
    finds it; -1 elsewhere).
    """

    side: str
    what: str
    there: bool = False
    path: Optional[str] = None
    k: int = -1

    SIDES = ("send", "basefile", "return")

    def render(self, name, machine="this machine"):
        side = "send" if self.side == "basefile" else self.side
        return f"{side}: {name}{self.what}" + (f" on {machine}" if self.there else "")


@dataclass(frozen=True)
class Output:
    """Complete lines (bytes ending in newline, or the last bytes at EOF) of a job."""

    slot: int
    seq: int
    stream: int  # 1 stdout, 2 stderr
    data: bytes


@dataclass(frozen=True)
class Finished:
    """An attempt ended: its exit status, how it ended and, where ssh failed or the job ended
    without its end mark, why."""

    slot: int
    seq: int
    exit: int  # ssh's exit status, or the job's from its end mark; negative: killed by that signal
    start: float  # epoch seconds
    runtime: float
    ending: Ending = Ending.OK  # OK, EXIT, TIMEOUT, IDLE_TIMEOUT, STRAGGLER, LOST or NEVER_RAN
    # LOST, NEVER_RAN: ssh's failure, classified (refused, authentication, connection lost, ...);
    # EXIT without an end mark, the connection alive: why it is the job's own failure
    reason: Optional[str] = None
    # the node's ProxyJump host ("" for none), once the worker looked it up (after a refused handshake)
    jump_host: Optional[str] = None
    sent: int = 0  # bytes of files sent for the attempt
    received: int = 0  # bytes of files brought back
    transfer: float = 0.0  # seconds its transfers took
    returned: tuple = ()  # (temporary path, its place) of each file brought back: placed if it is the result
    # seconds before the job started: opening the connection or session, files not counted (None:
    # no start mark to tell, --no-remote-cleanup); ``runtime`` is then the job's own, mark to mark
    connect: Optional[float] = None
    began: Optional[float] = None  # seconds from the attempt's start to the job's (connect and files sent)
    file: Optional[FileNamed] = None  # the file ``reason`` names, as data (a gateway's reasons: see FileNamed)
    # LOST, NEVER_RAN over ssh: ssh's own words for it ("Connection refused", "Permission denied
    # (publickey)"), as pdsh shows them; the reason stays the classified word the policy reads
    said: Optional[str] = None


@dataclass(frozen=True)
class Deferred:
    """The attempt was not started: the node is behind ``jump_host``, which refused handshakes,
    and the job waits for its turn under that host's limit; or (``password``) the node's sudo asks
    for a password, which the run has not asked for yet. Either way the job goes back as if it
    had not been sent."""

    slot: int
    seq: int
    jump_host: Optional[str]
    password: bool = False
