"""Jobs sent ahead down a slot's session (session.Pipelined.push, clstr/remote/loop.sh).

The runner starts a job sent ahead the moment the job before it ends with status 0, with no word
from clstr between, and drops it (its dropped mark) after a failure or a recall. A recall is a
USR1 the reader sends the runner; one the reader says it sent before the running job's end mark
always drops the job sent ahead. The loop is run here by real shells, as sshd would start it; the
reading of what comes after a job's end mark is checked by tables; a real run shows a recall
moving a job sent ahead behind a job that waits for it.
"""
import json
import os
import random
import signal
import subprocess
import sys

import pytest

from clstr import ssh
from clstr.reading import Marked, Reading
from test_loop import LOOP, Session
from test_wrapper import POSIXISH, shell_path
from conftest import wait_for
from test_lookahead import run_clstr

T = LOOP.token


class Marks:
    """The loop's stderr read line by line: its marks in order, the runner's pid once ready."""

    def __init__(self, session):
        self.s = session
        self.seen = []
        self.ready = None

    def until(self, kind):
        while True:
            line = self.s.proc.stderr.readline()
            assert line, f"the loop's stderr ended before a {kind!r} mark: {self.seen}"
            _, marks = LOOP.strip(line)
            for m in marks:
                self.seen.append(m[0])
                if m[0] == "r":
                    self.ready = m
                if m[0] == kind:
                    return m


@pytest.mark.parametrize("name", POSIXISH + ["sh"])
def test_a_job_sent_ahead_runs_after_status_0_and_is_dropped_after_a_failure(name):
    s = Session(shell_path(name))
    try:
        marks = Marks(s)
        assert marks.until("r")[2] is True  # it can be recalled: jobs may go ahead
        os.write(s.stdin, LOOP.frame("echo one") + LOOP.ahead("echo two") + LOOP.frame("exit 3")
                 + LOOP.ahead("echo never") + LOOP.frame("echo three") + LOOP.QUIT)
        out, _ = s.proc.communicate(timeout=30)
        kept, _ = LOOP.strip(out)
        assert kept == b"one\ntwo\nthree\n"
    finally:
        s.end()


@pytest.mark.parametrize("name", POSIXISH + ["sh"])
def test_a_recall_said_before_the_end_mark_always_drops_the_job_sent_ahead(name, tmp_path):
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    s = Session(shell_path(name))
    try:
        marks = Marks(s)
        runner = marks.until("r")[1]
        os.write(s.stdin, LOOP.frame(f"read x < {fifo}; echo waited"))
        marks.until("s")  # the job runs: the runner catches USR1 until its end mark
        os.write(s.stdin, LOOP.ahead("echo ahead") + LOOP.recall(runner))
        marks.until("w")  # the reader signalled the runner
        with open(fifo, "w") as f:
            f.write("x\n")  # the job may end now
        assert marks.until("e") == ("e", 0)
        assert marks.until("d") == ("d",)  # dropped, though its job before ended with 0
        os.write(s.stdin, LOOP.frame("echo after") + LOOP.QUIT)
        out, _ = s.proc.communicate(timeout=30)
        kept, _ = LOOP.strip(out)
        assert kept == b"waited\nafter\n"
    finally:
        s.end()


def test_a_loop_that_cannot_catch_usr1_takes_nothing_ahead():
    # a signal ignored when sh starts cannot be trapped: its ready mark says so
    proc = subprocess.Popen(["sh", "-c", LOOP.start_line()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGUSR1, signal.SIG_IGN))
    try:
        out, err = proc.communicate(LOOP.QUIT, timeout=30)
        _, marks = LOOP.strip(err)
        assert [m for m in marks if m[0] == "r"][0][2] is False
    finally:
        if proc.poll() is None:
            proc.kill()


def reading():
    events = []
    r = Reading(3, LOOP, lambda ev: events.append((ev.seq, ev.stream, ev.data)), session=True)
    return r, events


def test_what_comes_after_a_jobs_end_marks_in_the_same_read_is_the_next_jobs():
    r, events = reading()
    first = Marked()
    r.feed(first, 1, 1, f"out1\n{T}:o\nlate\n{T}:b\nout2\npart".encode())
    r.feed(first, 1, 2, f"err1\n{T}:e:0\n{T}:s\nerr2\n".encode())
    r.feed(first, 1, 1, b"ial\n")  # read before the next job's reading starts: kept for it
    assert (first.end, first.out_end) == (0, True)
    assert events == [(1, 1, b"out1\n"), (1, 2, b"err1\n")]
    r.last_seq = 1
    events.clear()
    second = Marked()
    r.resume(second, 2)
    assert second.begun and second.started and second.end is None
    assert sorted(events) == [(1, 1, b"late\n"), (2, 1, b"out2\npartial\n"), (2, 2, b"err2\n")]


def test_what_was_read_after_the_last_jobs_end_goes_to_it_when_the_session_ends():
    r, events = reading()
    p = Marked()
    r.feed(p, 5, 1, f"{T}:b\nx\n{T}:o\nlate, unended".encode())
    r.feed(p, 5, 2, f"{T}:s\n{T}:e:0\n".encode())
    r.last_seq = 5
    r.leftover()
    assert events == [(5, 1, b"x\n"), (5, 1, b"late, unended\n")]


def test_a_mark_of_the_next_job_is_found_among_what_was_read_after_the_end():
    r, _ = reading()
    p = Marked()
    r.feed(p, 1, 2, f"{T}:s\n{T}:e:0\n{T}:w\n{T}:d\n".encode())
    assert r.next_is((ssh.MARK_START, ssh.MARK_DROPPED)) == ssh.MARK_DROPPED
    assert not p.recalled  # said after the end mark: the outcome is the runner's to say


def test_a_job_sent_ahead_behind_one_that_waits_for_it_is_recalled_to_the_free_slot(tmp_path):
    # slot 0 runs job 1, which waits for job 3; slot 1 runs job 2 (a second long); job 3 is held by
    # slot 0, the first busy slot, and goes ahead down its session. When job 2 ends, nothing waits
    # and slot 1 is free: job 3 is recalled from slot 0 and runs on slot 1. Left ahead on slot 0 it
    # would wait for job 1, which waits for it: job 1 would time out.
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    r = run_clstr(tmp_path, "-n", "2/:", "--timeout", "30", "--joblog", "log", "--",
                  f"case {{}} in 1) read x < {fifo}; echo one;; 2) sleep 1; echo two;; "
                  f"3) echo x > {fifo}; echo three;; esac", ":::", "1", "2", "3")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == ["one", "three", "two"]
    rows = [line.split("\t") for line in (tmp_path / "log").read_text().splitlines()[1:]]
    assert sorted(row[0] for row in rows) == ["1", "2", "3"]  # each once


def test_a_last_line_one_read_left_unended_ends_at_the_end_mark_the_next_read_brings():
    r, events = reading()
    p = Marked()
    r.feed(p, 1, 1, f"{T}:b\na\nb".encode())
    r.feed(p, 1, 1, f"{T}:o\n{T}:b\nnext\n".encode())
    assert p.out_end and events == [(1, 1, b"a\n"), (1, 1, b"b\n")]
    assert r.later == {1: f"{T}:b\nnext\n".encode()}


def test_an_interrupt_starts_no_job_sent_ahead_and_every_job_is_told(tmp_path):
    # two slots run jobs that wait on a FIFO nobody writes; the jobs behind them are held, sent ahead
    # down the sessions; Ctrl-C ends the two and starts none of the others
    fifo, state = tmp_path / "go", tmp_path / "state.json"
    os.mkfifo(fifo)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg-empty"))
    env.pop("CLSTR_SSH", None)
    p = subprocess.Popen([sys.executable, "-m", "clstr", "--ssh", "no-ssh-here", "-n", "2/:", "--state", str(state),
                          "--json", "r.json", "--", f"echo {{}} >> started; read x < {fifo}", ":::", *"123456"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (tmp_path / "started").exists()
                        and len((tmp_path / "started").read_text().split()) == 2, 30)
        assert wait_for(lambda: (json.loads(state.read_text()) if state.exists() else {})
                        .get("counts", {}).get("running") == 2, 30)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 128 + signal.SIGINT, err
    assert sorted((tmp_path / "started").read_text().split()) == ["1", "2"]
    counts = json.loads((tmp_path / "r.json").read_text())["counts"]
    assert counts["succeeded"] == 0 and counts["not_run"] + counts["failed"] == 6 and counts["not_run"] >= 4, counts


def runner_streams(jobs):
    """What a runner writes for ``jobs`` [(stdout, stderr, status)] run one after another, as
    loop.sh writes it: its marks around each job's own bytes."""
    out, err = b"", b""
    for o, e, c in jobs:
        out += f"{T}:b\n".encode() + o + f"{T}:o\n".encode()
        err += f"{T}:s\n".encode() + e + f"{T}:e:{c}\n".encode()
    return out, err


def own_bytes(rng):
    """A job's output: lines, maybe a last one unended, maybe what looks like a mark of another run
    (the token is the run's secret: a job cannot write one of this run's marks by accident)."""
    lines = [b"".join(rng.choice([b"x", b"y", b" ", b"0" * 16, b":e:1", b":o"]) for _ in range(rng.randrange(0, 40)))
             for _ in range(rng.randrange(0, 5))]
    data = b"\n".join(lines)
    return data + b"\n" if data and rng.random() < 0.7 else data


@pytest.mark.parametrize("seed", range(40))
def test_jobs_read_in_any_pieces_get_exactly_their_own_output(seed):
    # the worker reads a session's two streams in whatever pieces they come, a job after another,
    # each job's reading starting once the one before ended (as with jobs sent ahead): each job's
    # output is its own, whole, whatever the pieces
    rng = random.Random(seed)
    jobs = [(own_bytes(rng), own_bytes(rng), rng.choice([0, 0, 0, 1, 255])) for _ in range(rng.randrange(1, 12))]
    out, err = runner_streams(jobs)
    r, events = reading()
    left = {1: out, 2: err}
    for seq, (_, _, status) in enumerate(jobs, 1):
        p = Marked()
        r.resume(p, seq)
        while p.end is None or not p.out_end:
            stream = rng.choice([s for s in (1, 2) if left[s]])
            size = rng.randrange(1, 64)
            r.feed(p, seq, stream, left[stream][:size])
            left[stream] = left[stream][size:]
        assert p.end == status and p.begun and p.started
        r.last_seq = seq
    assert left == {1: b"", 2: b""} and r.later in ({}, {1: b""}, {2: b""}, {1: b"", 2: b""})
    for seq, (o, e, _) in enumerate(jobs, 1):
        for stream, want in ((1, o), (2, e)):
            got = b"".join(d for s, st, d in events if s == seq and st == stream)
            assert got == (want + b"\n" if want and not want.endswith(b"\n") else want), (seq, stream)
