"""Pure: the times an attempt's worker must wake at, and which of them has passed.

An attempt juggles several clocks at once: ``--timeout`` (its whole run), ``--idle-timeout``
(its longest silence: every read of output pushes it back), a straggler's limit (``--timeout
N%``, which may arrive while it runs), the start bound (a node that accepted the connection
must start the job within it, or it is taken for hung), the ping of a pipelined job's loop,
and, once clstr ended the attempt's ssh, the drain (its pipes are read for a grace more, not
waited on). Times are the worker's monotonic clock; nothing here reads it.
"""
from .result import Ending


def start_bound(connect_timeout):
    """How long a job may take to start (or a master to connect) before its node is taken for hung.

    ssh's ConnectTimeout bounds the TCP connection and the banner, not the key exchange or the
    login that follow: a node that stalls there is ended by this.
    """
    return 2 * connect_timeout + 5


class Deadlines:
    """The clocks of one attempt (or of opening a session: ``job=False``, no job limits).

    ``t0``: when the attempt began. ``timeout``, ``idle``, ``straggler``: its limits in seconds
    (None: none); ``start_within``: the start bound (None: no marks to tell a start by);
    ``ping_every``: a pipelined job's ping period (None: no pings).
    """

    def __init__(self, t0, timeout=None, idle=None, straggler=None, start_within=None, ping_every=None,
                 job=True):
        self.t0 = t0
        self.job = job
        self.idle = idle if job else None
        self.timeout_at = t0 + timeout if timeout and job else None
        self.idle_at = t0 + idle if idle and job else None
        self.straggler = straggler if job else None
        self.began_at = t0  # when the job started (its start mark), once known
        self.straggle_at = t0 + straggler if straggler and job else None
        self.start_by = t0 + start_within if start_within is not None else None
        self.ping_every = ping_every if job else None
        self.ping_at = t0 + ping_every if ping_every and job else None
        self.drain_by = None

    def next(self, started, also=None):
        """The earliest time something is due (None: nothing): the limits, the start bound while
        the job has not ``started``, a ping, the drain, and ``also`` (another clock of the caller's)."""
        due = [t for t in (self.timeout_at, self.idle_at, self.straggle_at, None if started else self.start_by,
                           self.drain_by, self.ping_at, also) if t is not None]
        return min(due) if due else None

    def output(self, now):
        """The job wrote something: its silence starts again."""
        if self.idle_at is not None:
            self.idle_at = now + self.idle

    def limit(self, seconds):
        """A straggler's limit arrived while the job runs (ignored once its ssh was ended)."""
        if self.job and self.drain_by is None:
            self.straggler = seconds
            self.straggle_at = self.began_at + seconds

    def began(self, at):
        """The job started at ``at``: a straggler's limit, like the median it comes from, is of the
        job's own runtime, opening the connection not counted."""
        self.began_at = at
        if self.straggler and self.straggle_at is not None:
            self.straggle_at = at + self.straggler

    def expired(self, now):
        """The limit that has passed (Ending.TIMEOUT, IDLE_TIMEOUT, STRAGGLER), or None."""
        if self.timeout_at is not None and now >= self.timeout_at:
            return Ending.TIMEOUT
        if self.idle_at is not None and now >= self.idle_at:
            return Ending.IDLE_TIMEOUT
        if self.straggle_at is not None and now >= self.straggle_at:
            return Ending.STRAGGLER
        return None

    def late(self, now, started):
        """Whether the job has not started within the start bound."""
        return not started and self.start_by is not None and now >= self.start_by

    def drain(self, now, grace):
        """clstr ended the attempt's ssh: no limit applies any more; its pipes are read until ``now + grace``."""
        self.timeout_at = self.idle_at = self.straggle_at = self.start_by = None
        self.drain_by = now + grace

    def drained(self, now):
        return self.drain_by is not None and now >= self.drain_by

    def ping_due(self, now):
        """Whether a ping is due now (then the next one is planned)."""
        if self.ping_at is None or now < self.ping_at:
            return False
        self.ping_at = now + self.ping_every
        return True
