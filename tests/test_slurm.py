"""--slurm: jobs on a Slurm allocation's nodes through job steps, against a real Slurm started here
(tests/slurmnodes.py: munged, slurmctld and four emulated slurmds sn1..sn4 on this host).

Each test takes an allocation of its own, as a user's `salloc` would, and runs clstr with the
environment of the shell inside it. Jobs, -E, exit statuses, a node whose slurmd is gone, Ctrl-C
and --halt (the steps end, the allocation stays), files, the job log and --resume; the allocation's
node list read as Slurm writes it (checked against `scontrol show hostnames`).
"""
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from conftest import processes_with, read_until, wait_for
from clstr import slurm
from clstr.errors import InputError
import slurmnodes

WHY_NOT = slurmnodes.available()
if WHY_NOT and not os.environ.get("CI"):  # in CI, tests/run installs Slurm: there a missing one fails
    pytest.skip(WHY_NOT, allow_module_level=True)


@pytest.fixture(scope="module")
def slurmbed(tmp_path_factory):
    with slurmnodes.SlurmTestbed(tmp_path_factory.mktemp("slurm"), nodes=4) as bed:
        yield bed


@pytest.fixture
def alloc(slurmbed):
    job = slurmbed.allocate(4)
    yield job
    slurmbed.release(job)


def clstr(slurmbed, job, cwd, *args, timeout=90):
    return subprocess.run([sys.executable, "-m", "clstr", *args], capture_output=True, text=True, cwd=cwd,
                          env=slurmbed.env(job, XDG_CONFIG_HOME=str(cwd / "xdg")), timeout=timeout)


def outcomes(path):
    with open(path) as f:
        data = json.load(f)
    data["retired_nodes"] = {name: n["reason"] for name, n in data["nodes"].items() if n["retired"]}
    return {j["seq"]: (j["outcome"], j["exit"], j["node"]) for j in data["jobs"]}, data


def our_steps(slurmbed, job):
    return [step for step, name in slurmbed.steps(job).items() if name.startswith("clstr-")]


# ---- the allocation, read --------------------------------------------------
@pytest.mark.parametrize("nodelist,cpus,per_task", [
    ("sn[1-4]", "1(x4)", None), ("sn[1-3,5],gpu[01-02],x", "2(x4),4,8,1", "2"), ("a1,a[3-4]", "3,3,3", None)])
def test_the_allocations_nodes_are_slurms_own(slurmbed, nodelist, cpus, per_task):
    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": nodelist, "SLURM_JOB_CPUS_PER_NODE": cpus}
    if per_task:
        env["SLURM_CPUS_PER_TASK"] = per_task
    job, patterns = slurm.allocation(env)
    oracle = slurmbed.run("scontrol", "show", "hostnames", nodelist).stdout.split()
    assert job == "7" and [p.split("/", 1)[1] for p in patterns] == oracle
    counts = slurm.cpus_per_node(cpus)
    assert [int(p.split("/")[0]) for p in patterns] == [max(1, c // int(per_task or 1)) for c in counts]


def test_outside_an_allocation_says_what_to_do(tmp_path):
    with pytest.raises(InputError, match="salloc"):
        slurm.allocation({})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    r = subprocess.run([sys.executable, "-m", "clstr", "--slurm", "-j", "true"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=60)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == f"clstr: {slurm.OUTSIDE}\n"


def test_the_plan_follows_the_allocation(slurmbed, alloc, tmp_path):
    r = clstr(slurmbed, alloc, tmp_path, "--slurm", "--dry-run", "-j", "true")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "nodes: 4 (sn[1-4]), slots: 4"
    assert f"slurm: srun --jobid={alloc} --overlap" in r.stdout
    r = clstr(slurmbed, alloc, tmp_path, "--slurm", "--slots", "3", "-n", "sn[2-3]", "--dry-run", "-j", "true")
    assert r.stdout.splitlines()[0] == "nodes: 2 (sn[2-3]), slots: 6", r.stderr


def test_slurms_groups_name_nodes_as_clustershells_slurm_example_does(slurmbed, alloc, tmp_path):
    """@slurm: the allocation's nodes; @sp:PARTITION, @sj:JOB and their long names: the
    sources of ClusterShell's groups.conf.d/slurm.conf.example, checked against its nodeset with
    that very file (and sinfo, squeue) as ClusterShell runs it."""
    import shutil
    other = slurmbed.allocate(2)
    try:
        cfg = tmp_path / "cs"
        (cfg / "groups.conf.d").mkdir(parents=True)
        (cfg / "groups.conf").write_text("[Main]\ndefault: sp\nconfdir: $CFGDIR/groups.conf.d\n")
        shutil.copy("/etc/clustershell/groups.conf.d/slurm.conf.example", cfg / "groups.conf.d" / "slurm.conf")
        groups = ["@slurm", "@sp:test", "@slurmpart:test", f"@sj:{other}", f"@slurmjob:{alloc}",
                  f"@sp:test!@sj:{other}"]
        env_cs = slurmbed.env(alloc, CLUSTERSHELL_CFGDIR=str(cfg))
        for group in groups:
            r = clstr(slurmbed, alloc, tmp_path, "--dry-run", "-n", group, "-j", "true")
            assert r.returncode == 0, (group, r.stderr)
            ours = r.stdout.splitlines()[0]
            if group == "@slurm":
                want = "sn[1-4]"
            else:
                oracle = subprocess.run(["nodeset", "-f", group], capture_output=True, text=True, env=env_cs,
                                        timeout=60)
                assert oracle.returncode == 0, oracle.stderr
                want = oracle.stdout.strip()
            assert ours.startswith("nodes: ") and f"({want})" in ours, (group, ours, want)
        r = clstr(slurmbed, alloc, tmp_path, "--dry-run", "-n", "@sj:999999", "-j", "true")
        assert r.returncode == 2 and "slurmjob" not in r.stdout and len(r.stderr.splitlines()) == 1, r.stderr
    finally:
        slurmbed.release(other)


# ---- runs ----------------------------------------------------------------------
def test_jobs_run_on_the_allocations_nodes_with_exact_statuses(slurmbed, alloc, tmp_path):
    jobs = ["exit 0", "exit 3", "exit 255", "echo out; echo err >&2", "kill -9 $$"] + \
        [f"echo $SLURMD_NODENAME {i}" for i in range(60)]
    (tmp_path / "jobs.txt").write_text("".join(j + "\n" for j in jobs))
    r = clstr(slurmbed, alloc, tmp_path, "--slurm", "--slots", "2", "--job-failures", "job", "--json", "r.json",
              "jobs.txt")
    assert r.returncode == 1, r.stderr
    got, data = outcomes(tmp_path / "r.json")
    assert [got[i][:2] for i in (1, 2, 3, 4)] == [("succeeded", 0), ("failed", 3), ("failed", 255), ("succeeded", 0)]
    assert got[5][0] == "failed"
    ran = [line.split() for line in r.stdout.splitlines() if line.startswith("sn")]
    assert len(ran) == 60 and all(got[int(i) + 6][2] == node for node, i in ran)  # $SLURMD_NODENAME is the node
    assert {node for node, _ in ran} == {"sn1", "sn2", "sn3", "sn4"}
    assert "err" in r.stderr and "srun:" not in r.stderr
    assert data["retired_nodes"] == {}
    assert wait_for(lambda: our_steps(slurmbed, alloc) == [], 20)


def test_on_each_node(slurmbed, alloc, tmp_path):
    r = clstr(slurmbed, alloc, tmp_path, "--slurm", "--json", "r.json", "--tag", "-E", "echo $SLURMD_NODENAME; exit 4")
    got, _ = outcomes(tmp_path / "r.json")
    assert sorted(r.stdout.splitlines()) == [f"sn{i}: sn{i}" for i in range(1, 5)], r.stderr
    assert sorted(v[:2] for v in got.values()) == [("failed", 4)] * 4 and r.returncode == 1
    assert "srun:" not in r.stderr


def test_a_node_whose_slurmd_is_gone_is_the_nodes_failure_and_its_jobs_move(slurmbed, alloc, tmp_path):
    slurmbed.stop_node("sn2")
    try:
        r = clstr(slurmbed, alloc, tmp_path, "--slurm", "--reprobe", "0", "--json", "r.json",
                  *[a for i in range(12) for a in ("-j", f"echo {i} on $SLURMD_NODENAME")])
    finally:
        slurmbed.start_node("sn2")
    got, data = outcomes(tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert all(outcome == "succeeded" and node != "sn2" for outcome, _, node in got.values())
    assert list(data["retired_nodes"]) == ["sn2"] and data["retired_nodes"]["sn2"].startswith("srun: error:")


@pytest.mark.parametrize("how", ["interrupt", "halt"])
def test_interrupt_and_halt_end_the_steps_not_the_allocation(slurmbed, alloc, tmp_path, how):
    marker = f"clstr-s-{uuid.uuid4().hex[:10]}"
    args = ["--slurm", "-j", f"echo up; sleep 60 # {marker}", "-j", f"echo up; sleep 60 # {marker}"]
    if how == "halt":
        args += ["--halt", "now,fail=1", "--job-failures", "job", "-j", "sleep 1; exit 9"]
    p = subprocess.Popen([sys.executable, "-m", "clstr", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=tmp_path, env=slurmbed.env(alloc, XDG_CONFIG_HOME=str(tmp_path / "x")))
    try:
        read_until(p.stdout, ["up"])
        assert wait_for(lambda: len(processes_with(marker)) >= 2, 20)
        if how == "interrupt":
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == (128 + signal.SIGINT if how == "interrupt" else 1), err
    assert wait_for(lambda: not processes_with(marker), 20), processes_with(marker)
    assert wait_for(lambda: our_steps(slurmbed, alloc) == [], 20)
    assert slurmbed.job(alloc)["JobState"] == "RUNNING"  # the allocation itself is never cancelled


def test_files_and_resume(slurmbed, alloc, tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.in").write_text(f"{name}\n")
    (tmp_path / "jobs.txt").write_text("true\nexit 6\ntrue\n")
    r = clstr(slurmbed, alloc, tmp_path, "--slurm", "--trc", "{.}.out", "--wd", "...", "--",
              "tr a-z A-Z < {} > {.}.out", ":::", "a.in", "b.in", "c.in")
    assert r.returncode == 0, r.stderr
    assert [(tmp_path / f"{n}.out").read_text() for n in "abc"] == ["A\n", "B\n", "C\n"]
    r = clstr(slurmbed, alloc, tmp_path, "--slurm", "--job-failures", "job", "--joblog", "log", "jobs.txt")
    assert r.returncode == 1
    r = clstr(slurmbed, alloc, tmp_path, "--slurm", "--job-failures", "job", "--joblog", "log",
              "--resume-failed", "-v", "jobs.txt")
    assert r.returncode == 1 and "job 2 on" in r.stderr and "job 1 on" not in r.stderr, r.stderr
