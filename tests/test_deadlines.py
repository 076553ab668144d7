"""Pure tests of an attempt's clocks (clstr/deadlines.py): what is due when, and which limit passed."""
import pytest

from clstr.deadlines import Deadlines, start_bound
from clstr.result import Ending


def test_nothing_due_without_limits():
    d = Deadlines(100.0)
    assert d.next(started=True) is None and d.expired(1e9) is None and not d.late(1e9, False)


@pytest.mark.parametrize("kw,now,ending", [
    ({"timeout": 10}, 110.0, Ending.TIMEOUT),
    ({"timeout": 10}, 109.9, None),
    ({"idle": 5}, 105.0, Ending.IDLE_TIMEOUT),
    ({"straggler": 3}, 103.0, Ending.STRAGGLER),
    ({"timeout": 3, "idle": 3, "straggler": 3}, 103.0, Ending.TIMEOUT),  # the whole run's limit first
    ({"idle": 3, "straggler": 3}, 103.0, Ending.IDLE_TIMEOUT),
])
def test_which_limit_passed(kw, now, ending):
    assert Deadlines(100.0, **kw).expired(now) is ending


def test_output_pushes_the_idle_limit_back():
    d = Deadlines(100.0, idle=5)
    d.output(104.0)
    assert d.expired(105.0) is None and d.next(True) == 109.0 and d.expired(109.0) is Ending.IDLE_TIMEOUT


def test_a_straggler_limit_arriving_mid_job_counts_from_its_start():
    d = Deadlines(100.0, timeout=60)
    d.limit(4)
    assert d.next(True) == 104.0 and d.expired(104.0) is Ending.STRAGGLER


def test_opening_a_session_has_no_job_limits():
    d = Deadlines(100.0, timeout=10, idle=5, straggler=3, start_within=25, ping_every=5, job=False)
    d.limit(1)
    assert d.expired(1e9) is None and d.next(started=False) == 125.0 and d.next(started=True) is None
    assert not d.ping_due(1e9)


def test_the_start_bound_applies_until_the_job_started():
    d = Deadlines(100.0, start_within=start_bound(10))
    assert start_bound(10) == 25
    assert d.next(started=False) == 125.0 and d.next(started=True) is None
    assert d.late(125.0, started=False) and not d.late(125.0, started=True) and not d.late(124.9, False)


def test_once_drained_no_limit_applies_and_the_drain_ends():
    d = Deadlines(100.0, timeout=10, idle=5, start_within=25)
    d.drain(110.0, 1.0)
    d.limit(2)  # too late: the attempt is being ended
    assert d.expired(200.0) is None and not d.late(200.0, False)
    assert d.next(False) == 111.0 and not d.drained(110.5) and d.drained(111.0)


def test_pings_come_every_period_and_wake_the_worker():
    d = Deadlines(100.0, ping_every=5)
    assert d.next(True) == 105.0 and not d.ping_due(104.0)
    assert d.ping_due(105.5) and d.next(True) == 110.5 and not d.ping_due(106.0)


def test_another_clock_of_the_worker_is_waited_for_too():
    assert Deadlines(100.0, timeout=10).next(True, also=100.05) == 100.05
