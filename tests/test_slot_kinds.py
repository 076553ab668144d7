"""Both kinds of slot (issue 24): in an --on-each-node run a slot's worker is its ssh, started
and read by clstr's own loop (execslot.py); everywhere else, and with CLSTR_SLOT_WORKERS=python,
a forked Python worker. The tests of one job a node run here again with forked workers, so that
each holds for both kinds: exit statuses, never-run nodes, time limits, interruption, busy jump
hosts, the job log and --resume, -S, long jobs, gathering, profiles, persisted connections."""
import subprocess

import psutil
import pytest

from conftest import wait_for
# the tests of one job a node, collected here once more (run with forked workers by the fixture)
from test_busy import test_nodes_behind_a_busy_jump_host_share_its_start_rate
from test_failures import (test_connection_limit_loses_nothing, test_on_each_node_idle_timeout_and_a_long_job_of_its_own,
                           test_on_each_node_a_node_that_goes_silent_mid_job_is_lost_not_the_jobs_failure,
                           test_on_each_node_a_job_that_kills_its_shell_is_its_own_failure_once_the_node_says_so,
                           test_on_each_node_interrupt_ends_everything,
                           test_on_each_node_timeout_fails_the_job_and_ends_it_on_the_node)
from test_joblog import (test_on_each_node_names_the_nodes_it_failed_and_did_not_run_on_folded,
                         test_resume_on_each_node_runs_only_where_it_did_not_succeed)
from test_output_modes import test_gather_folds_identical_output
from test_persist import (runtime, test_a_dead_persisted_connection_not_yet_noticed_is_replaced_at_no_cost,
                          test_a_master_killed_between_runs_is_replaced_at_no_cost,
                          test_a_node_restarted_between_runs_costs_no_attempt, test_a_profile_may_persist_its_connections,
                          test_a_second_run_rides_the_first_runs_connections)
from test_seed_examples import test_on_each_node_cpuinfo
from test_story import test_no_promise_of_a_return_that_will_not_happen
from test_trust import (test_fanout_bounds_workers_not_only_running_jobs, test_host_with_port,
                        test_job_of_120_kb_runs_as_with_plain_ssh, test_max_exit_counts_a_node_that_never_ran_as_255,
                        test_never_run_on_each_node_job_is_not_run)


COLLECTED = (test_nodes_behind_a_busy_jump_host_share_its_start_rate, test_connection_limit_loses_nothing,
             test_on_each_node_a_node_that_goes_silent_mid_job_is_lost_not_the_jobs_failure,
             test_on_each_node_a_job_that_kills_its_shell_is_its_own_failure_once_the_node_says_so,
             test_on_each_node_idle_timeout_and_a_long_job_of_its_own, test_on_each_node_interrupt_ends_everything,
             test_on_each_node_timeout_fails_the_job_and_ends_it_on_the_node,
             test_on_each_node_names_the_nodes_it_failed_and_did_not_run_on_folded,
             test_resume_on_each_node_runs_only_where_it_did_not_succeed, test_gather_folds_identical_output,
             test_on_each_node_cpuinfo, test_no_promise_of_a_return_that_will_not_happen,
             test_fanout_bounds_workers_not_only_running_jobs, test_host_with_port,
             test_job_of_120_kb_runs_as_with_plain_ssh, test_max_exit_counts_a_node_that_never_ran_as_255,
             test_never_run_on_each_node_job_is_not_run, runtime,
             test_a_dead_persisted_connection_not_yet_noticed_is_replaced_at_no_cost,
             test_a_master_killed_between_runs_is_replaced_at_no_cost, test_a_node_restarted_between_runs_costs_no_attempt,
             test_a_profile_may_persist_its_connections, test_a_second_run_rides_the_first_runs_connections)


@pytest.fixture(autouse=True)
def forked_workers(monkeypatch, request):
    """Every test of this module with forked Python workers, but the one that asks for the default."""
    if "exec_slots" not in request.keywords:
        monkeypatch.setenv("CLSTR_SLOT_WORKERS", "python")


def children(p, names):
    try:
        return [c for c in psutil.Process(p.pid).children()
                if c.name().startswith(names) and c.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


@pytest.mark.exec_slots
def test_on_each_node_slots_are_their_ssh_and_other_runs_fork_workers(clstr, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    job = f"echo up; while [ ! -e {gate}/go ]; do sleep 0.05; done; echo done"
    for args, kind in ((["-E", job], "ssh"), (["-j", job, "-j", job], "python")):
        p = clstr.popen("-n", "n1", "-n", "n2", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline() == "up\n" and p.stdout.readline() == "up\n"
            assert wait_for(lambda: len(children(p, kind)) >= 2, 15)
            if kind == "ssh":
                assert children(p, "python") == []  # no worker forked: a node costs its ssh
            (gate / "go").touch()
            out, err = p.communicate(timeout=60)
        finally:
            p.kill()
        assert p.returncode == 0, err
        assert out == "done\ndone\n"
        (gate / "go").unlink()
