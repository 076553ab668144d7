"""Slots on this machine, or reached by --connect's command, whose job loop the supervisor reads
itself (loopslot.py): no Python worker is forked for them; every job runs exactly once and ends as
its marks say, whatever the jobs sent ahead and their recalls; a job that kills the loop is its
own failure; a background process's late output is kept. The runs of test_transports.py cover
the rest over both kinds of slot, for each of the two transports."""
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import types

import psutil
import pytest

from clstr import loopslot, ssh
from clstr.events import Connected, Finished, Job, Recalled
from clstr.options import RunOptions
from conftest import processes_with, wait_for


def clstr(tmp_path, *args, env=None, **kw):
    full = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg-empty"))
    full.pop("CLSTR_SLOT_WORKERS", None)
    full.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "clstr", "--ssh", "no-ssh-here", *args], cwd=tmp_path, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def children(p):
    try:
        return [c for c in psutil.Process(p.pid).children() if c.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def outcomes(path):
    with open(path) as f:
        data = json.load(f)
    return {j["seq"]: (j["outcome"], j["exit"], j.get("reason")) for j in data["jobs"]}


@pytest.mark.parametrize("nodes", [["-n", "2/:"], ["-n", "c1", "c2", "--connect", "sh -c '\"$@\"' {host}"]],
                         ids=["local", "command"])
@pytest.mark.parametrize("workers,forked", [({}, False), ({"CLSTR_SLOT_WORKERS": "python"}, True)])
def test_a_slot_is_its_job_loop_with_no_worker_forked(tmp_path, workers, forked, nodes):
    gate = tmp_path / "gate"
    job = f"echo up; while [ ! -e {gate} ]; do sleep 0.05; done; echo done"
    p = clstr(tmp_path, *nodes, "-j", job, "-j", job, env=workers)
    try:
        assert p.stdout.readline() == "up\n" and p.stdout.readline() == "up\n"
        kids = children(p)
        pythons = [c for c in kids if c.name().startswith("python")]
        assert len(kids) >= 2
        assert (len(pythons) == 2) if forked else (pythons == []), [c.name() for c in kids]
        gate.touch()
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert out == "done\ndone\n"


def test_every_job_runs_once_whatever_went_ahead(tmp_path):
    # short jobs with long ones among them and at the tail: held jobs go ahead behind long jobs and
    # start as they end, or are taken back (the recall itself is driven deterministically below);
    # each job leaves one line in its own file
    ran = tmp_path / "ran"
    ran.mkdir()
    jobs = []
    for i in range(1, 161):
        pause = "sleep 0.3; " if i % 23 == 0 or i > 150 else ""
        jobs.append(f"{pause}echo $$ >> {ran}/{i}; echo {i}")
    (tmp_path / "jobs.txt").write_text("".join(j + "\n" for j in jobs))
    for attempt in range(3):
        for f in ran.iterdir():
            f.unlink()
        p = clstr(tmp_path, "-n", "4/:", "--json", "r.json", "--joblog", f"log{attempt}", "jobs.txt")
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert sorted(map(int, out.split())) == list(range(1, 161))
        assert sorted(int(f.name) for f in ran.iterdir()) == list(range(1, 161))
        assert all(len(f.read_text().splitlines()) == 1 for f in ran.iterdir()), "a job ran twice"
        got = outcomes(tmp_path / "r.json")
        assert all(got[i][:2] == ("succeeded", 0) for i in range(1, 161))
        assert len((tmp_path / f"log{attempt}").read_text().splitlines()) == 161  # a header and each job once


def test_a_failed_job_drops_the_job_sent_ahead_behind_it_which_then_runs_once(tmp_path):
    # a non-zero exit presumes the node broken: what went ahead behind the failure is dropped
    # there and goes back; this machine, the only node, comes back (the job failed on every node)
    # and runs it: once
    ran = tmp_path / "ran"
    ran.mkdir()
    jobs = [f"echo x >> {ran}/{i}; " + ("exit 3" if i == 5 else "true") for i in range(1, 31)]
    (tmp_path / "jobs.txt").write_text("".join(j + "\n" for j in jobs))
    p = clstr(tmp_path, "-n", "1/:", "--json", "r.json", "jobs.txt")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    got = outcomes(tmp_path / "r.json")
    assert got[5][:2] == ("failed", 3)
    assert all(got[i][:2] == ("succeeded", 0) for i in range(1, 31) if i != 5), got
    assert sorted(int(f.name) for f in ran.iterdir()) == list(range(1, 31))
    assert all(f.read_text() == "x\n" for f in ran.iterdir()), "a job ran twice"


def test_a_job_that_kills_the_loop_is_its_own_failure_and_the_next_job_gets_a_new_loop(tmp_path):
    p = clstr(tmp_path, "-n", "1/:", "--job-failures", "job", "--json", "r.json",
              "-j", "echo before", "-j", "kill -9 $PPID; sleep 5", "-j", "echo after")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    got = outcomes(tmp_path / "r.json")
    assert got[1][:2] == ("succeeded", 0) and got[3][:2] == ("succeeded", 0)
    assert got[2][0] == "failed" and "killed the job loop" in got[2][2]
    assert out.split() == ["before", "after"]


def test_a_background_processs_late_output_is_kept(tmp_path):
    # written after its job ended, while the next job runs: it is read, and said
    done = tmp_path / "bg-done"
    p = clstr(tmp_path, "-n", "1/:", "-j", f"echo now; (sleep 0.3; echo late; touch {done}) &",
              "-j", f"while [ ! -e {done} ]; do sleep 0.05; done; echo second")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out == "now\nlate\nsecond\n"


def test_interrupted_with_jobs_sent_ahead_every_job_is_accounted_for(tmp_path):
    marker = f"clstr-ls-{os.getpid()}"
    jobs = [f"echo {i}; sleep 60; : {marker}" if i % 2 else f"echo {i}" for i in range(1, 21)]
    (tmp_path / "jobs.txt").write_text("".join(j + "\n" for j in jobs))
    p = clstr(tmp_path, "-n", "2/:", "--json", "r.json", "jobs.txt")
    try:
        assert p.stdout.readline().strip() and p.stdout.readline().strip()
        assert wait_for(lambda: len(processes_with(marker)) >= 1, 15)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 130, err
    got = outcomes(tmp_path / "r.json")
    assert sorted(got) == list(range(1, 21))
    assert all(o in ("succeeded", "failed", "not run") for o, _, _ in got.values())
    assert wait_for(lambda: not processes_with(marker), 10), processes_with(marker)


# ---- the kind driven directly: what a held job sent ahead becomes, deterministically ----------
class Driven:
    """A LocalLoops of one slot on this machine, driven as the supervisor drives it: its events kept."""

    def __init__(self, tmp_path):
        self.sel = selectors.DefaultSelector()
        self.events = []
        board = types.SimpleNamespace(pid=[0], state=[0])
        slots = [types.SimpleNamespace(node=":")]

        def left_out(*a):
            raise AssertionError(a)
        self.kind = loopslot.LocalLoops(RunOptions(), ssh.Loop(os.urandom(12).hex()), dict(os.environ), self.sel,
                                        board, slots, lambda idx, ev: self.events.append(ev), left_out)
        self.dir = tmp_path

    def until(self, what, deadline=30.0):
        """Run the loop until ``what()`` holds (bounded)."""
        end = time.monotonic() + deadline
        while not what():
            assert time.monotonic() < end, self.events
            for key, _ in self.sel.select(0.05):
                key.data()
            self.kind.tick(time.monotonic())

    def ended(self, seq):
        return next((e for e in self.events if isinstance(e, Finished) and e.seq == seq), None)

    def close(self):
        self.kind.shutdown()
        self.sel.close()


def job(seq, command, hold=0, after=0):
    return Job(seq, command, hold=hold, after=after)


@pytest.fixture
def driven(tmp_path):
    d = Driven(tmp_path)
    yield d
    d.close()


def started(d, path):
    return any(isinstance(e, Connected) for e in d.events) and path.exists() and d.kind.sessions[0].p.started


def test_a_job_sent_ahead_starts_as_the_one_before_ends_with_status_0(driven, tmp_path):
    d, gate = driven, tmp_path / "gate"
    d.kind.take(0, job(1, f"touch {tmp_path}/a; while [ ! -e {gate} ]; do sleep 0.02; done; echo a"))
    d.until(lambda: started(d, tmp_path / "a"))
    assert d.kind.holds(0) and d.kind.hold(0, job(2, "echo b", hold=7, after=1))
    gate.touch()
    d.until(lambda: d.ended(2) is not None)
    assert (d.ended(1).exit, d.ended(1).ending.name) == (0, "OK") and d.ended(2).exit == 0
    assert d.kind.take_back(0, 7) is False  # its loop started it: the supervisor may not take it back
    assert [(e.seq, e.data) for e in d.events if type(e).__name__ == "Output"] == [(1, b"a\n"), (2, b"b\n")]


def test_a_job_sent_ahead_behind_a_failure_is_dropped_and_goes_back(driven, tmp_path):
    d, gate = driven, tmp_path / "gate"
    d.kind.take(0, job(1, f"touch {tmp_path}/a; while [ ! -e {gate} ]; do sleep 0.02; done; exit 3"))
    d.until(lambda: started(d, tmp_path / "a"))
    assert d.kind.hold(0, job(2, f"touch {tmp_path}/b-ran", hold=7, after=1))
    gate.touch()
    d.until(lambda: d.ended(1) is not None)
    assert d.ended(1).exit == 3 and d.kind.take_back(0, 7) is True and not d.kind.runs(0)
    d.kind.take(0, job(3, "echo c"))  # the slot's next job: the dropped one never ran before it
    d.until(lambda: d.ended(3) is not None)
    assert not (tmp_path / "b-ran").exists()


def test_a_recalled_job_sent_ahead_never_starts_and_is_given_back(driven, tmp_path):
    d, gate = driven, tmp_path / "gate"
    d.kind.take(0, job(1, f"touch {tmp_path}/a; while [ ! -e {gate} ]; do sleep 0.02; done; echo a"))
    d.until(lambda: started(d, tmp_path / "a"))
    assert d.kind.hold(0, job(2, f"touch {tmp_path}/b-ran", hold=7, after=1))
    assert d.kind.take_back(0, 7, recall=True) is False  # sent ahead: asked back down the session
    d.until(lambda: any(isinstance(e, Recalled) for e in d.events) or d.kind.later)
    d.kind.tick(0.0)  # (said within the take_back: handed over on the next tick)
    d.until(lambda: any(isinstance(e, Recalled) for e in d.events))
    assert d.kind.take_back(0, 7, recall=True) is True
    assert not d.kind.holds(0)  # a session a recall went down sends nothing more ahead
    gate.touch()
    d.until(lambda: d.ended(1) is not None)
    assert d.ended(1).exit == 0
    d.kind.take(0, job(3, "echo c"))
    d.until(lambda: d.ended(3) is not None)
    assert not (tmp_path / "b-ran").exists()


def test_a_recall_after_the_job_sent_ahead_started_is_settled_by_the_runners_next_mark(driven, tmp_path):
    # the recall goes down after the job ended and its runner started the one sent ahead (it left a
    # file), before clstr read that end: the runner's next mark (its start) says it started, and it
    # is read at once, not after the 30 s clstr waits for a runner that says nothing
    d, gate, b = driven, tmp_path / "gate", tmp_path / "b-ran"
    d.kind.take(0, job(1, f"touch {tmp_path}/a; while [ ! -e {gate} ]; do sleep 0.02; done"))
    d.until(lambda: started(d, tmp_path / "a"))
    assert d.kind.hold(0, job(2, f"touch {b}; echo b", hold=7, after=1))
    gate.touch()
    assert wait_for(b.exists, 15)  # (nothing read meanwhile: clstr has not heard job 1 end)
    assert d.kind.take_back(0, 7, recall=True) is False
    d.until(lambda: d.ended(2) is not None, deadline=10)
    assert d.ended(1).exit == 0 and d.ended(2).exit == 0
    assert d.kind.take_back(0, 7) is False  # it started: not the supervisor's to take back
