"""Pure: the phases of an attempt, decided once for both of the ways an attempt is driven.

An attempt of a forked worker (worker.py: a blocking loop of its own) and one whose worker is
its ssh (execslot.py: a state machine on the supervisor's clock) go through the same phases. The
drivers start the processes, wait and read; what each phase decides is here, so that both decide
it alike:

* MASTER: --persist: the node's persisted connection found alive, or opened (``master_opened``);
* LOOKUP: ``ssh -G``: the node's ProxyJump host, after a refused handshake (ssh.jump_host);
* JOB: the job itself; a deadline that passes ends it (``overdue``), its end is judged by
  judging.Judge.verdict whichever way the job ran (a session of its own, or the slot's loop);
* ASK: a job that ended with no end mark and no word of ssh's: whether the node's wrapper lives
  on (judging.after_asking);
and after the job, whether the persisted connection it went over had died (``replaced``).
"""
import enum

from . import controldir


class Phase(enum.Enum):
    """Where an attempt is (execslot.ExecAttempt.phase)."""

    MASTER = "master"
    LOOKUP = "lookup"
    JOB = "job"
    ASK = "ask"


# the phases that are a short ssh of clstr's own before or after the job, read to its end
ASIDES = (Phase.LOOKUP, Phase.ASK)


def master_opened(judge, code, late, bound=None):
    """(ok, why not) of opening the node's master: ``code`` the exit status of ``ssh -f`` (None: it
    was ended), ``late``: ended for not coming up within the start bound (connected, then stalled
    in the key exchange or the login); ``bound``: whether the master answers on its socket, where
    that was looked at (--persist: one up but without its socket was ended, controldir.end_unbound)."""
    if code == 0 and not late:
        if bound is False:
            return False, controldir.NOT_BOUND.format(judge.control_path)
        return True, None
    return False, judge.master_error() or ("timed out" if late else f"ssh exit {code}")


def overdue(deadlines, p, now, started):
    """Whether the attempt must be ended now (then TERM, KILL after a grace, its pipes drained): a
    limit passed (``p.timed_out``: which), or the job has not ``started`` within the start bound
    (``p.late``: the node is taken for hung)."""
    expired = deadlines.expired(now)
    if expired is not None:
        p.timed_out = expired
        return True
    if deadlines.late(now, started):
        p.late = True
        return True
    return False


def replaced(job, reused, judge, said=True):
    """Whether the job went over a persisted master that was dead (its node restarted): the master
    died when asked for the job's session and ssh went on over a connection of the job's own
    (events.REPLACED). ``said``: ssh said something before the job began (a master asked after
    every job would cost a connect it must answer)."""
    return bool(job.connect and reused and said and not judge.master_alive())
