"""Pipelined jobs (one ssh session a slot, the remote job loop) against the real sshd testbed.

The failure and cleanup guarantees (timeouts, Ctrl-C, nodes dying mid-job, killed workers) are
tested in test_failures, test_trust and test_chaos, which run pipelined by default; here: that
jobs do share a session, that they see exactly what one session a job shows them, the session
replaced after a timeout, the fallback, and what a background process holding output does.
"""
import json
import os
import threading

import pytest

from conftest import lines
from test_failures import jobs_args, remote_leftovers

# the job's parent: the loop's sh when pipelined, the connection's sshd process otherwise
PARENT = "echo $PPID; tr '\\0' ' ' </proc/$PPID/cmdline | cut -c1-12"


def test_jobs_of_a_slot_share_one_session(clstr):
    r = clstr("-n", "n1", *jobs_args([PARENT] * 4))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert len(set(out[0::2])) == 1, out  # one loop ran all four
    assert set(out[1::2]) == {"sh -c t=$1; "}
    r = clstr("--no-pipeline", "-n", "n1", *jobs_args([PARENT] * 2))
    # one session a job: the job's parent is the wrapper, its login shell (a session each)
    out = r.stdout.splitlines()
    assert len(set(out[0::2])) == 2 and {line[:8] for line in out[1::2]} == {"bash -c "}, r.stdout


JOBS = [
    "echo plain",
    "printf 'no newline'",
    "printf 'a\\nb'; printf 'x' >&2",
    "cd /; pwd; export X=1; Y=2",
    'echo "X=[$X] Y=[$Y]"; pwd',
    "echo err >&2; exit 3",
    "exec sh -c 'echo execd; exit 5'",
    "printf '\\000\\001\\377\\n'",
    "head -c 200000 /dev/zero | tr '\\0' y; echo",
    "sleep 0.1 & wait; echo waited",
    "echo 'quote'\"'\"'s $HOME \\\\ `x` ;|&<>'",
    "cat <<'EOF'\nq\n1\nEOF",
    "cat; echo \"stdin is empty\"",
]


def test_jobs_see_what_one_session_a_job_shows_them(clstr, tmp_path):
    """Every job's stdout, stderr and exit status are the same pipelined and with one session a job."""
    seen = {}
    for mode in ([], ["--no-pipeline"]):
        d = tmp_path / ("one" if mode else "pipelined")
        js = tmp_path / f"{d.name}.json"
        r = clstr(*mode, "-n", "n1", "--job-failures", "job", "--output-dir", str(d), "--json", str(js),
                  *jobs_args(JOBS))
        assert r.returncode == 1, r.stderr
        files = {name: (d / name).read_bytes() for name in sorted(os.listdir(d))}
        exits = {j["seq"]: j["exit"] for j in json.loads(js.read_text())["jobs"]}
        seen[bool(mode)] = (files, exits)
    assert seen[True] == seen[False]
    files, exits = seen[False]
    assert exits == {**{i: 0 for i in range(1, 14)}, 6: 3, 7: 5}
    assert files["2.out"] == b"no newline\n" and files["3.out"] == b"a\nb\n" and files["3.err"] == b"x\n"
    assert files["5.out"] == f"X=[] Y=[]\n{os.path.expanduser('~')}\n".encode()
    assert files["8.out"] == b"\x00\x01\xff\n" and files["9.out"] == b"y" * 200000 + b"\n"
    assert files["11.out"] == b"quote's $HOME \\\\ `x` ;|&<>\n" and files["12.out"] == b"q\n1\n"


def test_job_killed_by_a_signal_reports_it_and_nothing_else(clstr):
    r = clstr("-n", "n1", "--job-failures", "job", "-j", "echo before; kill -TERM $$", "-j", "echo next")
    assert r.returncode == 1
    assert lines(r.stdout) == ["before", "next"]
    assert r.stderr.splitlines()[-1] == "clstr: 2 jobs: 1 succeeded, 1 failed, 0 not run."  # no "Terminated"
    assert "failed: job 1 on n1 (exit 143)" in r.stderr


def test_timeout_ends_the_job_and_the_next_job_gets_a_new_session(clstr, tmp_path):
    first = tmp_path / "first"
    r = clstr("-n", "n1", "--timeout", "1", *jobs_args([f"echo $PPID > {first}; sleep 31; echo never",
                                                       "echo $PPID", "echo $PPID"]))
    assert r.returncode == 1
    assert "failed: job 1 on n1 (timeout)" in r.stderr and "retired" not in r.stderr
    after = lines(r.stdout)
    assert len(after) == 2 and after[0] == after[1] != first.read_text().strip()
    assert remote_leftovers("sleep 31; echo never") == []


def test_a_node_that_cannot_run_the_loop_gets_one_session_a_job(clstr):
    """nosh: no sh on PATH. The loop's start fails without an ssh failure: the slot falls back."""
    r = clstr("-v", "-n", "nosh", *jobs_args(["echo one", "echo two", "exit 4"]), "--job-failures", "job")
    assert r.returncode == 1, r.stderr
    assert lines(r.stdout) == ["one", "two"]
    assert r.stderr.count("the job loop did not start (exit 127)") == 1
    assert "one ssh session a job on this slot" in r.stderr
    assert "failed: job 3 on nosh (exit 4" in r.stderr
    assert "retired" not in r.stderr


def test_background_process_holding_output_does_not_hold_the_job(clstr, tmp_path):
    """Pipelined, a job ends with its shell; with one session a job, ssh waits for its output to close."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    job = f"(cat {gate} >/dev/null; echo late) & echo first"
    try:
        r = clstr("-n", "n1", "-j", job, "-j", "echo second", timeout=30)
        assert (r.returncode, lines(r.stdout)) == (0, ["first", "second"]), r.stderr
    finally:
        opener = threading.Thread(target=lambda: open(gate, "w").close(), daemon=True)
        opener.start()  # lets the background process go
        opener.join(10)


@pytest.mark.parametrize("mode", [[], ["--no-pipeline"]])
def test_idle_timeout_ends_a_silent_job_not_a_chatty_one(clstr, tmp_path, mode):
    """Both jobs run 3 s; the chatty one writes every 0.3 s, the silent one nothing: --idle-timeout 1."""
    chatty = "for i in 1 2 3 4 5 6 7 8 9 10; do echo tick; sleep 0.3; done; echo chatty done"
    silent = "sleep 3.1; echo silent done"
    r = clstr(*mode, "--idle-timeout", "1", "--job-failures", "job", "-n", "n1", "-n", "n2",
              "-j", chatty, "-j", silent, "--json", str(tmp_path / "run.json"))
    summary = json.loads((tmp_path / "run.json").read_text())
    assert r.returncode == 1, r.stderr
    outcome = {j["seq"]: (j["outcome"], j["reason"]) for j in summary["jobs"]}
    assert outcome == {1: ("succeeded", ""), 2: ("failed", "idle timeout")}
    assert "chatty done" in r.stdout and "silent done" not in r.stdout
    assert "retired" not in r.stderr
