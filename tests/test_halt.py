"""--halt WHEN,WHAT=N, as GNU parallel's, against the real sshd: the run stops starting jobs (and,
with now, ends the running ones), and the summary, exit status, job log and JSON agree on what
became of every job."""
import json
import subprocess

import pytest

from clstr import checks
from clstr.errors import InputError
from clstr.scheduler import Halt
from test_reprobe import finish, read_stderr_until


def records(tmp_path):
    result = json.loads((tmp_path / "out.json").read_text())
    rows = [r.split("\t") for r in (tmp_path / "log").read_text().splitlines()[1:]]
    return result, {int(r[0]): int(r[6]) for r in rows}


def test_soon_fail_lets_running_jobs_finish_and_starts_no_more(clstr, tmp_path):
    gate = tmp_path / "gate"
    jobs = ["exit 3", f"while [ ! -e {gate} ]; do sleep 0.05; done; echo slow"] + [f"echo later-{i}" for i in range(4)]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    p = clstr.popen("-n", "2/n1", "--job-failures", "job", "--halt", "soon,fail=1", "--joblog", "log", "--json",
                    "out.json", "jobs", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        read_stderr_until(p, "halted: 1 job failed: no job starts now, 1 running job may finish", seen)
        gate.touch()
        out, err = finish(p, seen)
    finally:
        p.kill()
    assert p.returncode == 1, err
    assert out == "slow\n"
    assert "6 jobs: 1 succeeded, 1 failed, 4 not run." in err and "halted: 1 job failed (--halt)" in err
    assert "4 jobs not run (halted: 1 job failed): jobs 3-6" in err  # folded: one line for the four
    result, log = records(tmp_path)
    assert result["halted"] == "halted: 1 job failed" and result["exit_status"] == 1
    assert [(j["seq"], j["outcome"]) for j in result["jobs"]] == [(1, "failed"), (2, "succeeded")] + [
        (s, "not run") for s in range(3, 7)]
    assert log == {1: 3, 2: 0}  # the jobs not run have no row: a --resume runs them


@pytest.mark.timeout(60)
def test_now_fail_ends_the_running_jobs(clstr, tmp_path):
    started = tmp_path / "started"
    jobs = [f"while [ ! -e {started} ]; do sleep 0.05; done; exit 3", f"touch {started}; sleep 60; echo never",
            "echo later"]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    r = clstr("-n", "2/n1", "--job-failures", "job", "--halt", "now,fail=1", "--joblog", "log", "--json",
              "out.json", "jobs", timeout=50)
    assert r.returncode == 1, r.stderr
    assert "never" not in r.stdout
    assert "halted: 1 job failed: no job starts now, ending 1 running job" in r.stderr
    result, log = records(tmp_path)
    assert [(j["outcome"], j["reason"]) for j in result["jobs"]] == [
        ("failed", "exit 3"), ("not run", "halted: 1 job failed"), ("not run", "halted: 1 job failed")]
    assert log == {1: 3}


@pytest.mark.timeout(60)
def test_now_success_exits_0_with_the_rest_not_run(clstr, tmp_path):
    started = tmp_path / "started"
    jobs = [f"while [ ! -e {started} ]; do sleep 0.05; done; echo first", f"touch {started}; sleep 60"] + \
        [f"echo more-{i}" for i in range(3)]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    r = clstr("-n", "2/n1", "--halt", "now,success=1", "-S", "--json", "out.json", "jobs", timeout=50)
    assert r.returncode == 0, r.stderr  # as GNU parallel: the success asked for was reached
    assert r.stdout == "first\n"
    assert "5 jobs: 1 succeeded, 0 failed, 4 not run." in r.stderr
    assert "halted: 1 job succeeded (--halt); the jobs it left were not run, as asked" in r.stderr
    result, _ = json.loads((tmp_path / "out.json").read_text()), None
    assert result["exit_status"] == 0 and result["counts"]["not_run"] == 4


def test_soon_done_percent(clstr, tmp_path):
    (tmp_path / "jobs").write_text("".join(f"echo {i}\n" for i in range(8)))
    r = clstr("-n", "n1", "--halt", "soon,done=25%", "--json", "out.json", "jobs")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert [j["outcome"] for j in result["jobs"]] == ["succeeded"] * 2 + ["not run"] * 6
    assert result["halted"] == "halted: 2 jobs done"


def test_legacy_halt_2_is_now_fail_1(clstr, tmp_path):
    r = clstr("-n", "n1", "--job-failures", "job", "--halt", "2", "-j", "exit 4", "-j", "echo no")
    assert r.returncode == 1 and r.stdout == "" and "not run: job 2 (halted: 1 job failed)" in r.stderr


@pytest.mark.parametrize("text,halt", [
    ("soon,fail=1", Halt("soon", "fail", 1)), ("now,success=3%", Halt("now", "success", percent=3.0)),
    ("1", Halt("soon", "fail", 1)), ("2", Halt("now", "fail", 1)), ("-1", Halt("soon", "success", 1)),
    ("-2", Halt("now", "success", 1)), ("10%", Halt("soon", "fail", percent=10.0)), ("never", None), ("0", None),
])
def test_halt_forms(text, halt):
    assert checks.halt(text) == halt


@pytest.mark.parametrize("text", ["sometime,fail=1", "soon,fails=1", "soon,fail=0", "soon,fail=", "soon,fail=x",
                                  "now,done=101%", "3"])
def test_bad_halt_is_one_line(clstr, text):
    with pytest.raises(InputError, match="expected never, soon|now"):
        checks.halt(text)
    r = clstr("-n", "n1", "--halt", text, "-j", "true")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"--halt {text!r}: expected" in r.stderr
