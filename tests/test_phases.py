"""The phases of an attempt (clstr/phases.py), decided once for the forked worker and the exec
slot alike: tables, no process."""
import pytest

from clstr import controldir, phases
from clstr.deadlines import Deadlines
from clstr.events import Job
from clstr.reading import Marked
from clstr.result import Ending


class FakeJudge:
    control_path = "/run/x/cm-n1"

    def __init__(self, alive=True, error=None):
        self.alive, self.error = alive, error

    def master_error(self):
        return self.error

    def master_alive(self):
        return self.alive


@pytest.mark.parametrize("code,late,bound,error,expected", [
    (0, False, None, None, (True, None)),
    (0, False, True, None, (True, None)),
    (0, False, False, None, (False, controldir.NOT_BOUND.format(FakeJudge.control_path))),
    (255, False, None, "authentication", (False, "authentication")),
    (255, False, None, None, (False, "ssh exit 255")),
    (-15, True, None, None, (False, "timed out")),
    (0, True, None, None, (False, "timed out")),  # ended for lateness: never taken for up
    (-15, True, None, "connection refused", (False, "connection refused")),
])
def test_opening_a_master_is_judged_alike_by_both_drivers(code, late, bound, error, expected):
    assert phases.master_opened(FakeJudge(error=error), code, late, bound) == expected


@pytest.mark.parametrize("now,started,timed_out,late", [
    (0.5, False, None, False),
    (11.0, False, None, True),  # no start mark within the start bound: the node is taken for hung
    (11.0, True, None, False),
    (31.0, True, Ending.TIMEOUT, False),
])
def test_a_deadline_that_passed_says_which(now, started, timed_out, late):
    d, p = Deadlines(0.0, timeout=30, start_within=10), Marked()
    assert phases.overdue(d, p, now, started) == (timed_out is not None or late)
    assert (p.timed_out, p.late) == (timed_out, late)


@pytest.mark.parametrize("connect,reused,said,alive,expected", [
    (True, True, True, False, True),
    (True, True, True, True, False),
    (True, False, True, False, False),  # a master opened by this run
    (False, True, True, False, False),  # not the opener: another slot says it
    (True, True, False, False, False),  # ssh said nothing before the job: nothing to tell by
])
def test_a_dead_persisted_master_is_told_once(connect, reused, said, alive, expected):
    job = Job(1, "true", connect=connect)
    assert phases.replaced(job, reused, FakeJudge(alive=alive), said) is expected


def test_the_phases_are_typed():
    assert set(phases.Phase) == {phases.Phase.MASTER, phases.Phase.LOOKUP, phases.Phase.JOB, phases.Phase.ASK}
    assert phases.Phase.JOB not in phases.ASIDES
