"""Gateways: clstr serving on a testbed address over ssh, driving the nodes behind it.

Pure tables first (frames, routes, the hello), then real runs: the gateway is a testbed node
(the same machine), its clstr found installed (PYTHONPATH given to its python) or sent as a
zipapp (``python3 -S``: no site-packages there); failures of the gateway itself (killed, frozen,
refused, a wrong version), of nodes behind it, and of the root (Ctrl-C, SIGKILL).
The gateway's python is found by a marker in its environment that the test put there.
"""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import uuid

import psutil
import pytest

import clstr
from clstr import frames, routes
from clstr.errors import InputError
from clstr.events import Connected, Deferred, FileNamed, Finished, Job, Notice, Output
from clstr.remotepool import judge_hello
from clstr.result import Ending
from clstr.ssh import SshConfig
from conftest import lines, read_until, wait_for
from test_failures import remote_leftovers, run_marker

REPO = os.path.dirname(os.path.dirname(os.path.abspath(clstr.__file__)))
VERSION = clstr.__version__


# ---- frames ------------------------------------------------------------------
EVENTS = [
    Connected(3), Connected(3, reused=True), Notice(3, "its persisted connection was dead"),
    Notice(3, "its persisted connection was dead: the job went over a connection of its own", replaced=True),
    Output(3, 7, 1, b"\x00\xffbytes\n"), Output(3, 7, 2, b""),
    Finished(3, 7, -15, 1.5, 2.25, Ending.TIMEOUT, "timed out", None, 0, 0, 0.0, (), 0.1, 0.2),
    Finished(3, 0, 255, 1.0, 0.0, Ending.NEVER_RAN, "connection refused", "busy"),
    Finished(3, 5, 255, 1.0, 0.0, Ending.NEVER_RAN, "refused", said="Connection refused"),
    Finished(3, 4, 255, 1.0, 0.5, Ending.FILE_FAILED, "return: file 2 changed while it was brought back",
             file=FileNamed("return", " changed while it was brought back", False, None, 2)),
    Deferred(3, 9, "busy"),
]


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_crosses_as_json_and_comes_back_equal(ev):
    line = frames.encode("ev", slot=3, e=[frames.event_out(ev)])
    frame = frames.decode(line.rstrip(b"\n"), ("ev",))
    assert [frames.event_in(d, 3) for d in frame["e"]] == [ev]
    assert b"\n" not in line[:-1]


def test_a_file_a_reason_names_crosses_by_its_place_never_by_the_gateways_path():
    """A gateway's paths are its own: the root names the file (FileCarrier.named)."""
    from clstr.remotepool import FileCarrier
    from clstr.transfer import JobFiles, Return, Send
    failed = FileNamed("return", ": no space left", True, None, 1)
    ev = Finished(3, 4, 255, 1.0, 0.5, Ending.FILE_FAILED, "return: /tmp/clstr-gwfiles-x/out/3-4-1: no space left",
                  file=failed)
    d = frames.event_out(dataclasses.replace(ev, file=dataclasses.replace(failed, path="/tmp/clstr-gwfiles-x/out/3-4-1")))
    assert "gwfiles" not in json.dumps(d["file"])
    back = frames.event_in(d, 3)
    assert back.file == failed
    jf = JobFiles((Send("in.dat", "in.dat"),), (Return("a.res", "/root/a.res"), Return("b.res", "/root/b.res")))
    carrier = FileCarrier(lambda idx: jf, "token", (Send("base.sh", "base.sh"),), "gateway g1")
    assert carrier.finished(3, back).reason == "return: /root/b.res: no space left on gateway g1"
    assert carrier.named(3, FileNamed("send", ": it changed while it was sent", k=0)) == \
        "send: in.dat: it changed while it was sent"
    assert carrier.named(3, FileNamed("basefile", ": no space left", True, k=0)) == \
        "send: base.sh: no space left on gateway g1"


HOSTILE = [
    b"", b"not json", b"[1,2]", b'{"x":1}', b'{"t":5}', b"\xff\xfe",
]


@pytest.mark.parametrize("line", HOSTILE)
def test_a_line_that_is_not_a_frame_is_refused(line):
    with pytest.raises(frames.FrameError):
        frames.decode(line)


BAD_EVENTS = [
    {"k": "Pickle"}, {"k": "Output", "seq": 1, "stream": 1, "data": "!!"},
    {"k": "Output", "seq": 1, "stream": 1, "data": 5}, {"k": "Finished", "seq": 1, "exit": True, "start": 0,
                                                          "runtime": 0, "ending": "OK"},
    {"k": "Finished", "seq": 1, "exit": 0, "start": 0, "runtime": 0, "ending": "GONE"},
    {"k": "Finished", "seq": "1", "exit": 0, "start": 0, "runtime": 0, "ending": "OK"},
    {"k": "Finished", "seq": 1, "exit": 0, "start": 0, "runtime": 0, "ending": "OK", "returned": [["/tmp/x", "y"]]},
    {"k": "Notice"}, {"k": "Deferred", "seq": 1}, "Connected", None,
    *({"k": "Finished", "seq": 1, "exit": 255, "start": 0, "runtime": 0, "ending": "FILE_FAILED", "file": f}
      for f in ("send", [], {"side": "send", "what": ": x", "there": False},
                {"side": "pickle", "what": ": x", "there": False, "k": 0},
                {"side": "send", "what": ": x", "there": False, "k": -1},
                {"side": "send", "what": 5, "there": False, "k": 0},
                {"side": "send", "what": ": x", "there": "yes", "k": 0})),
]


@pytest.mark.parametrize("d", BAD_EVENTS, ids=str)
def test_a_malformed_event_is_refused_not_crashed_on(d):
    with pytest.raises(frames.FrameError):
        frames.event_in(d, 0)


def test_jobs_and_setup_cross_and_come_back():
    job = Job(4, "echo 'a b'", 2, True, 1.5, False)
    slot, node, group, back, files = frames.job_in(frames.decode(frames.job_out(5, "u@n1", ("u@n1", 1), job)))
    assert (slot, node, group, back, files) == (5, "u@n1", ("u@n1", 1), job, None)
    from clstr.transfer import JobFiles, Return, Send
    job = Job(4, "x", files=JobFiles((Send("/here/a", "a"), Send("/here/b", "sub/b")), (Return("r", "/here/r"),)),
              basefiles=True)
    *_, back, files = frames.job_in(frames.decode(frames.job_out(5, "n1", ("n1", 0), job, [7, 8])))
    assert files == ([(7, "a"), (8, "sub/b")], ["r"], [None] * 3) and back.basefiles and back.files is None
    # the root's marks beside each send and return (transfer.Mark) cross with them, checked
    marks = [".clstr-mark-12-0-ab12cd34", "-", ".clstr-mark-12-1-ef56ab78"]
    *_, files = frames.job_in(frames.decode(frames.job_out(5, "n1", ("n1", 0), job, [7, 8], marks)))
    assert files[2] == marks
    frame = frames.decode(frames.job_out(5, "n1", ("n1", 0), job, [7, 8], marks))
    for bad in (["../x", "-", "-"], ["-", "-"], [".clstr-mark-1/r", "-", "-"], [1, "-", "-"]):
        frame["files"]["marks"] = bad
        with pytest.raises(frames.FrameError, match="marks"):
            frames.job_in(frame)
    cfg = SshConfig(("ssh", "-F", "x"), ("Port=2",), 3.0, 1, 2, True, True, "f" * 24, ("A=b",), "...")
    assert frames.setup_in(frames.decode(frames.setup_out(cfg, 5.0, None, 12, False, True))) == (
        cfg, 5.0, None, 12, False, True)


@pytest.mark.parametrize("hello,why", [
    ({"proto": 1, "clstr": clstr.__version__, "python": "3.11.2"}, None),
    ({"proto": 1, "clstr": clstr.__version__, "python": "3.8.10"}, "python 3.8.10 there, clstr needs 3.9 or later"),
    ({"proto": 0, "clstr": clstr.__version__, "python": "3.12.1"}, "it speaks gateway protocol 0, this clstr 1"),
    ({"proto": 1, "clstr": "0.1.0", "python": "3.12.1"}, f"clstr '0.1.0' there, {clstr.__version__} here"),
    ({"proto": 1, "clstr": clstr.__version__}, "its hello names no python version"),
])
def test_the_hello_is_judged(hello, why):
    assert judge_hello(hello, clstr.__version__) == why


@pytest.mark.parametrize("shell", ["sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish"])
def test_the_boot_line_is_taken_alike_by_every_login_shell(shell):
    import shutil
    from clstr import gateway
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell} here (tests/run installs it)")
    line = gateway.bootstrap(f"env PYTHONPATH={REPO} python3")
    r = subprocess.run([shell, "-c", line], input=b"", capture_output=True, timeout=30)
    hello = frames.decode(r.stdout.splitlines()[0], ("hello",))
    assert hello["clstr"] == clstr.__version__ and hello["proto"] == frames.PROTOCOL and not hello["zipapp"]
    assert r.returncode == 0  # its stdin's end is its quit
    assert frames.decode(r.stdout.splitlines()[-1], ("bye",))["cpu"] >= 0


# ---- routes --------------------------------------------------------------------
def test_gateway_option_and_profile_mapping():
    assert routes.gateway_option("gw[1-2]=n[1-2]") == {"gw1": ["n1", "n2"], "gw2": ["n1", "n2"]}
    assert routes.mapping({"gw1": "n[1-2]", "gw2": ["n3", "n[4-5]"]}, "f:1") == {
        "gw1": ["n1", "n2"], "gw2": ["n3", "n4", "n5"]}
    for bad in ("gw1", "=n1", "gw1=", "gw1=n[1-"):
        with pytest.raises(InputError):
            routes.gateway_option(bad)
    for bad in ([], {}, {"gw": 3}, {"gw": [1]}):
        with pytest.raises(InputError):
            routes.mapping(bad, "f:1")


def test_a_node_reached_by_several_gateways_goes_to_the_least_loaded_and_keeps_the_others():
    r = routes.Routes({"gw1": ["n1", "n2", "n3", "n4"], "gw2": ["n3", "n4", "n5"]})
    plan = r.plan(["n1", "n2", "n3", "n4", "n5", "n6", "alice@n5"])
    assert plan == {"n1": ("gw1",), "n2": ("gw1",), "n3": ("gw2", "gw1"), "n4": ("gw2", "gw1"),
                    "n5": ("gw2",), "alice@n5": ("gw2",)}
    assert r.folded(plan, ["n1", "n2", "n3", "n4", "n5", "n6"]) == [
        "  gw1: 2 (n[1-2])", "  gw2: 3 (n[3-5])", "  direct: 1 (n6)"]
    assert routes.Routes({"gw1": ["gw1", "n1"]}).plan(["gw1", "n1"]) == {"n1": ("gw1",)}


@pytest.mark.parametrize("fallback", ["direct", "none"])
def test_a_node_keeps_its_route_while_in_the_run_and_moves_when_out(fallback):
    up = {"gw1": True, "gw2": True}
    router = routes.Router({"n1": ("gw1", "gw2"), "n2": ("gw2",)}, lambda g: up[g], fallback)
    assert [router.route(n) for n in ("n1", "n2", "n9")] == ["gw1", "gw2", None]
    up["gw1"] = False
    assert router.route("n1") == "gw2"  # its gateway is down: the next one that reaches it
    up["gw1"] = True
    assert router.route("n1") == "gw2"  # back up: the node stays where its connections are
    assert router.reroute("n1") == "gw1"  # until it is out of the run: then its first choice again
    up["gw2"] = False
    down = routes.UNREACHABLE if fallback == "none" else None
    assert router.route("n2") is down
    up["gw2"] = True
    assert router.route("n2") == ("gw2" if fallback == "none" else None)  # direct stays direct until out
    assert router.reroute("n2") == "gw2"
    assert router.drivers() == {"n1": "gw1", "n2": "gw2"}


TOPOLOGY = """\
# ClusterShell's own example, one level
[Main]
[routes]
admin: gw[1-2]
gw[1-2]: node[1-4]   # both gateways reach every node
"""


def test_topology_conf_one_level():
    assert routes.topology(TOPOLOGY, "t.conf") == {"gw1": [f"node{i}" for i in range(1, 5)],
                                                   "gw2": [f"node{i}" for i in range(1, 5)]}


@pytest.mark.parametrize("text,where,words", [
    ("[routes]\nadmin: gw1\ngw1: n[1-2]\nn1: m[1-3]\n", "t.conf:4", "one level of gateways"),
    ("[routes]\nadmin gw1\n", "t.conf:2", "expected 'NODES: NODES'"),
    ("[Main]\nx: y\n", "t.conf", "no [routes] section"),
    ("[routes]\na: b\nc: d\n", "t.conf", "cannot tell the root"),
    ("[routes]\nadmin: gw[1-\n", "t.conf:2", ""),
])
def test_topology_conf_errors_name_the_line(text, where, words):
    with pytest.raises(InputError) as e:
        routes.topology(text, "t.conf")
    assert e.value.where == where and words in e.value.message


def test_topology_with_two_roots_takes_this_host():
    text = "[routes]\nadmin1: gw1\nadmin2: gw2\ngw1: n1\ngw2: n2\n"
    assert routes.topology(text, "t", hostname="admin2.example.org") == {"gw2": ["n2"]}


# ---- real runs -------------------------------------------------------------------
def gw_python(mark, zipapp=False):
    """The --gateway-python of a test: its marker in the environment; installed clstr or none."""
    if zipapp:
        return f"env CLSTR_TEST_GW={mark} python3 -S"
    return f"env CLSTR_TEST_GW={mark} PYTHONPATH={REPO} python3"


def gateway_procs(mark, workers=False):
    """The gateway pythons carrying ``mark`` in their environment (their forked workers too, if asked)."""
    found = []
    for p in psutil.process_iter(["uids"]):
        try:
            if p.environ().get("CLSTR_TEST_GW") == mark and "python" in p.name():
                found.append(p)
        except (psutil.Error, OSError):
            continue
    if workers:
        return found
    pids = {p.pid for p in found}
    return [p for p in found if p.ppid() not in pids]


def nothing_left(mark, job_marker=None):
    """No gateway python, no ssh of the testbed, no job process of ``job_marker`` left."""
    assert wait_for(lambda: not gateway_procs(mark, workers=True), 15), "a gateway process is left"
    if job_marker:
        assert not remote_leftovers(job_marker)
    return True


@pytest.fixture
def mark():
    return uuid.uuid4().hex[:12]


def as_json(path):
    with open(path) as f:
        return json.load(f)


@pytest.mark.parametrize("zipapp", [False, True], ids=["installed", "zipapp"])
def test_jobs_through_a_gateway_keep_exact_statuses(clstr, tmp_path, testbed, mark, zipapp):
    out, state = tmp_path / "r.json", tmp_path / "state.json"
    r = clstr("-n", "n2", "-n", "n3", "--gateway", "n1=n[2-3]", "--gateway-python", gw_python(mark, zipapp),
              "--job-failures", "job", "--max-attempts", "1", "-v", "--tag", "--json", str(out), "-S",
              "--state", str(state),
              "-j", "echo one; echo err >&2", "-j", "exit 7", "-j", "kill -9 $$", "-j", "printf 'no newline'",
              *[a for i in range(20) for a in ("-j", f"echo {i}")], timeout=60)
    assert out.exists(), r.stderr
    d = as_json(out)
    assert r.returncode == 137, r.stderr  # -S: the largest status, the job killed by signal 9
    assert "gateway n1: up" in r.stderr and ("sent as a zipapp" if zipapp else "installed") in r.stderr
    assert d["gateways"]["n1"]["state"] == "up" and d["gateways"]["n1"]["nodes"] == ["n2", "n3"]
    assert {n: v["gateway"] for n, v in d["nodes"].items()} == {"n2": "n1", "n3": "n1"}
    snap = as_json(state)
    assert snap["gateways"]["n1"]["state"] == "up" and snap["nodes"]["n2"]["gateway"] == "n1"
    assert d["gateways"]["n1"]["cpu"] > 0  # its bye said what it used
    assert "clstr: gateways: n1 up, driving n[2-3]" in r.stderr
    by = {j["command"]: j for j in d["jobs"]}
    assert by["exit 7"]["exit"] == 7 and by["exit 7"]["outcome"] == "failed"
    assert by["kill -9 $$"]["exit"] == 137  # as a direct slot says it: the job's shell killed by signal 9
    assert by["echo 0"]["outcome"] == "succeeded"
    assert "no newline" in r.stdout and ": err" in r.stderr
    assert nothing_left(mark)
    assert not run_marker(testbed)


def test_time_limits_and_faulty_nodes_behind_a_gateway(clstr, tmp_path, testbed, mark):
    out = tmp_path / "r.json"
    jobs = ["sleep 30 # tl-" + mark] + [f"echo job {i}" for i in range(12)]
    r = clstr("-n", "refused", "hung", "badauth", "n2", "n3", "--gateway", "n1=refused,hung,badauth,n[2-3]",
              "--gateway-python", gw_python(mark), "--timeout", "2", "--connect-timeout", "2",
              "--job-failures", "job", "--max-attempts", "1", "--reprobe", "0", "--json", str(out),
              *[a for j in jobs for a in ("-j", j)], timeout=60)
    d = as_json(out)
    by = {j["command"]: j for j in d["jobs"]}
    assert by[jobs[0]]["outcome"] == "failed" and by[jobs[0]]["attempts"][-1]["ending"] == "timeout"
    assert all(by[j]["outcome"] == "succeeded" for j in jobs[1:]), r.stderr
    assert {n: d["nodes"][n]["retired"] for n in ("refused", "hung", "badauth")} == dict.fromkeys(
        ("refused", "hung", "badauth"), True)
    assert d["nodes"]["refused"]["reason"] == "refused"  # as a direct slot says it
    assert d["nodes"]["refused"]["ssh_said"] == "Connection refused"  # ssh's words, from the gateway's side
    assert d["nodes"]["badauth"]["configuration_error"]
    assert r.returncode == 1
    assert nothing_left(mark, "tl-" + mark)


def test_a_busy_sshd_behind_a_gateway_costs_no_job(clstr, tmp_path, testbed, mark):
    r = clstr("-n", "6/busy", "--gateway", "n1=busy", "--gateway-python", gw_python(mark),
              *[a for i in range(24) for a in ("-j", f"echo b{i}")], timeout=90)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == sorted(f"b{i}" for i in range(24))
    assert nothing_left(mark)


KILL_SESSION = ('p=$PPID; while [ "$p" -gt 1 ]; do case "$(ps -o args= -p $p)" in '
                '"sshd: "*@notty*) kill -9 $p; break;; esac; p=$(ps -o ppid= -p $p | tr -d " "); done')


@pytest.mark.parametrize("mode", [[], ["--no-multiplex"]])
def test_a_node_lost_mid_job_behind_a_gateway_moves_its_job(clstr, tmp_path, mark, mode):
    marker = tmp_path / "killed-once"
    job = f"if [ ! -e {marker} ]; then touch {marker}; {KILL_SESSION}; sleep 5; fi; echo survived"
    r = clstr("-n", "n2", "-n", "n3", "--gateway", "n1=n[2-3]", "--gateway-python", gw_python(mark),
              "--job-failures", "job", *mode, "-j", job, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "survived\n"
    assert "retired: connection lost" in r.stderr
    assert nothing_left(mark)


def start_long_run(clstr, tmp_path, mark, nodes, gateways, njobs=6, extra=()):
    """A run of ``njobs`` jobs that print and then wait on a gate file; returns (proc, gate, json)."""
    gate = tmp_path / "gate"
    out = tmp_path / "r.json"
    jobs = [f"echo started {i}; while [ ! -e {gate} ]; do sleep 0.05; done; echo done {i} # gw-{mark}"
            for i in range(njobs)]
    proc = clstr.popen("-n", *nodes, *[a for g in gateways for a in ("--gateway", g)],
                       "--gateway-python", gw_python(mark), "--json", str(out), *extra,
                       *[a for j in jobs for a in ("-j", j)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, gate, out


def test_a_gateway_killed_mid_run_costs_an_attempt_and_its_jobs_finish_elsewhere(clstr, tmp_path, testbed, mark):
    joblog = tmp_path / "joblog"
    proc, gate, out = start_long_run(clstr, tmp_path, mark, ["n2", "n3"], ["n1=n[2-3]"], njobs=4,
                                     extra=("--reprobe", "1", "--joblog", str(joblog)))
    try:
        read_until(proc.stdout, [f"started {i}" for i in range(2)])
        (gw,) = gateway_procs(mark)
        master = gw.pid
        gw.kill()
        gate.touch()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        gate.touch()
    assert proc.returncode == 0, stderr
    d = as_json(out)
    assert d["counts"]["succeeded"] == 4
    lost = [a for j in d["jobs"] for a in j["attempts"] if a["ending"] == "lost"]
    assert len(lost) == 2 and all(a["reason"] == "gateway n1 lost" for a in lost)
    assert "gateway n1 lost:" in stderr and "2 running jobs go back" in stderr
    assert "node n2 retired: gateway n1 lost" in stderr
    assert "clstr: gateways: n1 " in stderr and "lost 1 time (last: its ssh exited" in stderr
    rows = [line.split("\t") for line in joblog.read_text().splitlines()[1:]]
    assert sorted(int(r[0]) for r in rows) == [1, 2, 3, 4] and all(r[6] == "0" for r in rows)  # one row a job
    # its masters, orphaned by the SIGKILL, are ours to end (found by the dead gateway's pid)
    for p in psutil.process_iter(["cmdline"]):
        if f"/clstr-{master}." in " ".join(p.info["cmdline"] or []):
            p.kill()
    assert nothing_left(mark, f"gw-{mark}")


def test_a_frozen_gateway_is_lost_within_its_bound_and_cleans_up_when_it_thaws(testbed, tmp_path, mark):
    gate = tmp_path / "gate"
    started = tmp_path / "started"
    jobs = [f"touch {started}.{i}; while [ ! -e {gate} ]; do sleep 0.05; done; echo done {i} # fz-{mark}"
            for i in range(3)]
    frozen = []

    def freeze():
        if not frozen and wait_for(lambda: os.path.exists(f"{started}.0"), 30):
            for p in gateway_procs(mark):
                p.suspend()
                frozen.append(p)
            gate.touch()
    import threading
    t = threading.Thread(target=freeze)
    t.start()
    try:
        r = clstr.run(jobs, ["n2"], ssh=testbed.ssh, gateways={"n1": "n2"}, gateway_python=gw_python(mark),
                      alive_interval=1, alive_count=2, reprobe=1, stdout=False, stderr=False, log=lambda m: None)
    finally:
        t.join(30)
        for p in frozen:
            p.resume()
        gate.touch()
    assert frozen and [j.outcome for j in r.jobs] == ["succeeded"] * 3
    assert r.gateways["n1"]["losses"] >= 1 and "silent for" in r.gateways["n1"]["last_loss"]
    assert any(a.reason == "gateway n1 lost" for j in r.jobs for a in j.attempts)
    assert nothing_left(mark, f"fz-{mark}")


@pytest.mark.parametrize("python,why", [
    ("/nonexistent/python3", "gateway n1 refused: no /nonexistent/python3 there"),
    ("OLD", "gateway n1 refused: it speaks gateway protocol 0, this clstr 1"),
    ("PY38", "gateway n1 refused: python 3.8.10 there, clstr needs 3.9 or later"),
    ("NOISE", "gateway n1 refused: it sent what is not a frame of clstr's"),
])
def test_a_gateway_refused_at_the_start_leaves_its_nodes_driven_directly(clstr, tmp_path, python, why):
    fake = {"OLD": '{"t":"hello","proto":0,"clstr":"0.1.0","python":"3.11.2"}',
            "PY38": '{"t":"hello","proto":1,"clstr":"0.2.0","python":"3.8.10"}', "NOISE": "Welcome to gw1!"}
    if python in fake:
        script = tmp_path / "fakepython"
        script.write_text(f"#!/bin/sh\necho '{fake[python]}'\ncat >/dev/null\n")
        script.chmod(0o755)
        python = str(script)
    r = clstr("-n", "n2", "n3", "--gateway", "n1=n[2-3]", "--gateway-python", python,
              *[a for i in range(6) for a in ("-j", f"echo r{i}")], timeout=60)
    assert r.returncode == 0, r.stderr
    assert why in r.stderr and "its 2 nodes (n[2-3]) are driven directly" in r.stderr
    assert lines(r.stdout) == sorted(f"r{i}" for i in range(6))


@pytest.mark.parametrize("reply", [
    '{"t":"ev","slot":SLOT,"e":[{"k":"Finished","seq":999,"exit":0,"start":0,"runtime":0,"ending":"OK"}]}',
    '{"t":"ev","slot":SLOT,"e":[{"k":"Output","seq":SEQ,"stream":1,"data":"not base64!"}]}',
    '{"t":"died","slot":12345,"exit":0}',
    '{"t":"ev","slot":SLOT,"e":[{"k":"Finished","seq":SEQ,"exit":0,"start":0,"runtime":0,"ending":"OK",'
    '"returned":[["/etc/passwd","x"]]}]}',
    '[1,2,3]',
], ids=["another job", "bad base64", "no such slot", "a file placed by name", "not an object"])
def test_a_gateway_that_sends_hostile_frames_is_lost_and_its_jobs_run_elsewhere(clstr, tmp_path, reply):
    script = tmp_path / "fakepython"
    script.write_text(f"""#!{sys.executable}
import json, sys
print(json.dumps({{"t": "hello", "proto": 1, "clstr": "{VERSION}", "python": "3.11.2"}}), flush=True)
for line in sys.stdin:
    f = json.loads(line)
    if f["t"] == "job":
        out = {reply!r}.replace("SLOT", str(f["slot"])).replace("SEQ", str(f["job"]["seq"]))
        print(out, flush=True)
""")
    script.chmod(0o755)
    out = tmp_path / "r.json"
    r = clstr("-n", "n2", "--gateway", "n1=n2", "--gateway-python", str(script), "--reprobe", "1",
              "--json", str(out), "-j", "echo ran", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ran\n"
    assert "gateway n1 lost: it sent what is not a frame of clstr's" in r.stderr
    assert "Traceback" not in r.stderr
    d = as_json(out)
    assert [a["reason"] for a in d["jobs"][0]["attempts"]][:1] == ["gateway n1 lost"]
    assert d["gateways"]["n1"]["losses"] >= 1 and d["nodes"]["n2"]["gateway"] is None  # driven directly at the end


def test_gateway_fallback_none_leaves_the_jobs_not_run_with_why(clstr, tmp_path):
    out = tmp_path / "r.json"
    r = clstr("-n", "n2", "--gateway", "refused=n2", "--gateway-fallback", "none", "--reprobe", "1",
              "--reprobe-for", "2", "--json", str(out), "-j", "echo x", timeout=60)
    d = as_json(out)
    assert r.returncode == 1 and r.stdout == ""
    assert "gateway refused refused: refused; its node waits for it (--gateway-fallback none)" in r.stderr
    assert d["jobs"][0]["outcome"] == "not run"
    assert d["gateways"]["refused"]["state"] == "refused"
    assert "no gateway reaches it (refused refused)" in d["nodes"]["n2"]["reason"]


def test_a_node_reached_by_two_gateways_survives_the_loss_of_one(clstr, tmp_path, testbed, mark):
    proc, gate, out = start_long_run(clstr, tmp_path, mark, ["n4", "n5"], ["n1=n[4-5]", "n2=n[4-5]"], njobs=4,
                                     extra=("--reprobe", "1", "--gateway-fallback", "none", "-v"))
    try:
        read_until(proc.stdout, [f"started {i}" for i in range(2)])
        gws = {p.pid: p for p in gateway_procs(mark)}
        assert len(gws) == 2
        victim = min(gws.values(), key=lambda p: p.create_time())  # the first started: n1's
        victim.kill()
        gate.touch()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        gate.touch()
    d = as_json(out)
    assert proc.returncode == 0, stderr
    assert d["counts"]["succeeded"] == 4
    lost_gw = "n1" if "gateway n1 lost" in stderr else "n2"
    kept = "n2" if lost_gw == "n1" else "n1"
    assert d["nodes"]["n4"]["gateway"] == kept and d["nodes"]["n5"]["gateway"] == kept
    for p in psutil.process_iter(["cmdline"]):
        if f"/clstr-{victim.pid}." in " ".join(p.info["cmdline"] or []):
            p.kill()
    assert nothing_left(mark, f"gw-{mark}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=["ctrl-c", "sigterm", "sighup", "sigkill"])
def test_the_root_interrupted_or_killed_leaves_nothing_on_the_gateway(clstr, tmp_path, testbed, mark, sig):
    proc, gate, out = start_long_run(clstr, tmp_path, mark, ["n2", "n3"], ["n1=n[2-3]"], njobs=2)
    try:
        read_until(proc.stdout, ["started 0", "started 1"])
        assert gateway_procs(mark)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig
        d = as_json(out)
        assert d["counts"]["not_run"] == 2 and d["interrupted_by"] == signal.Signals(sig).name
        assert all(j["reason"] == "interrupted" for j in d["jobs"])
    assert nothing_left(mark, f"gw-{mark}")
    assert wait_for(lambda: not run_marker(testbed), 15)
    gate.touch()


def test_files_go_through_a_gateway_and_back_byte_identical(clstr, tmp_path, mark):
    from test_transfer import digest, make, records
    (tmp_path / "in").mkdir()
    sizes = [0, 1000, (3 << 20) + 7]  # empty, small, and pieces of several frames
    names = []
    for i, size in enumerate(sizes):
        make(tmp_path / "in" / f"f{i}.dat", size, i)
        names.append(f"in/f{i}.dat")
    (tmp_path / "base.txt").write_text("shared\n")
    remote = tmp_path / "remote"
    r = clstr("-n", "2/n2", "-n", "n3", "--gateway", "n1=n[2-3]", "--gateway-python", gw_python(mark),
              "--wd", str(remote), "--bf", "base.txt", "--joblog", "log", "--json", "out.json",
              "--trc", "out/{/.}.res", "--", "cat base.txt >&2; mkdir -p out && cp {} out/{/.}.res", ":::", *names,
              timeout=90)
    assert r.returncode == 0, r.stderr
    for i in range(len(sizes)):
        assert digest(tmp_path / "out" / f"f{i}.res") == digest(tmp_path / "in" / f"f{i}.dat")
    assert r.stderr.count("shared") == 3
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".clstr")]  # no partial left here
    assert not list(remote.rglob("f*"))  # --trc cleans up on the nodes, through the gateway
    result, rows = records(tmp_path)
    for j in result["jobs"]:
        a = j["attempts"][-1]
        assert a["received"] == sizes[j["seq"] - 1] and a["sent"] >= sizes[j["seq"] - 1]
        assert result["nodes"][a["node"]]["gateway"] == "n1"
    assert nothing_left(mark)
    assert not [p for p in os.listdir("/tmp") if p.startswith("clstr-gwfiles-")]


def test_a_fresh_workdir_through_a_gateway_is_removed_by_it_with_cleanup(clstr, tmp_path, mark):
    (tmp_path / "base.txt").write_text("shared\n")
    home_runs = os.path.expanduser("~/.clstr/work")
    before = set(os.listdir(home_runs)) if os.path.isdir(home_runs) else set()
    r = clstr("-n", "n2", "n3", "--gateway", "n1=n[2-3]", "--gateway-python", gw_python(mark), "--bf", "base.txt",
              "--wd", "...", "--cleanup", "--", "cat base.txt; pwd", ":::", "1", "2", "3", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("shared\n") == 3
    after = set(os.listdir(home_runs)) if os.path.isdir(home_runs) else set()
    assert after == before  # the gateway removed it from its nodes at the end
    assert nothing_left(mark)


def test_a_missing_return_through_a_gateway_fails_naming_the_file(clstr, tmp_path, mark):
    remote = tmp_path / "remote"
    r = clstr("-n", "n2", "--gateway", "n1=n2", "--gateway-python", gw_python(mark), "--job-failures", "job",
              "--wd", str(remote), "--return", "out/{}.res", "--", "true", ":::", "7", timeout=60)
    assert r.returncode == 1
    assert f"failed: job 1 on n2 (return: {remote}/out/7.res: no such file on n2)" in r.stderr
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    assert nothing_left(mark)


def test_halt_now_ends_the_jobs_running_behind_a_gateway(clstr, tmp_path, mark):
    out = tmp_path / "r.json"
    jobs = [f"sleep 30 # hn-{mark}", f"sleep 30 # hn-{mark}", "sleep 0.5; exit 3", "echo never"]
    r = clstr("-n", "2/n2", "n3", "--gateway", "n1=n[2-3]", "--gateway-python", gw_python(mark), "--job-failures", "job",
              "--max-attempts", "1", "--halt", "now,fail=1", "--json", str(out),
              *[a for j in jobs for a in ("-j", j)], timeout=60)
    d = as_json(out)
    by = {j["command"]: j for j in d["jobs"]}
    assert by["sleep 0.5; exit 3"]["outcome"] == "failed"
    assert [by[j]["outcome"] for j in jobs[:2]] == ["not run", "not run"], r.stderr
    assert by["echo never"]["outcome"] == "not run" and r.returncode == 1
    assert "halted: 1 job failed: no job starts now, ending 2 running jobs" in r.stderr
    assert nothing_left(mark, f"hn-{mark}")


def test_dry_run_shows_the_routing_and_bad_gateway_input_is_one_line(clstr, tmp_path):
    r = clstr("-n", "n[1-6]", "--gateway", "gw1=n[1-3]", "--gateway", "gw2=n[3-4]", "--dry-run", "-j", "true")
    assert r.returncode == 0, r.stderr
    assert "  gw1: 2 (n[1-2])" in r.stdout and "  gw2: 2 (n[3-4])" in r.stdout and "  direct: 2 (n[5-6])" in r.stdout
    topo = tmp_path / "topology.conf"
    topo.write_text("[routes]\nadmin: gw1\ngw1: n[1-2]\nn1: x[1-2]\n")
    for args, words in ((["--gateway", "gw1"], "--gateway 'gw1': expected GW=NODES"),
                        (["--topology", str(topo)], f"{topo}:4:"),
                        (["--topology", str(tmp_path / "none.conf")], "none.conf")):
        r = clstr("-n", "n1", *args, "-j", "true")
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.splitlines()) == 1, (args, r.stderr)
    prof = tmp_path / "p.yaml"
    prof.write_text("lab:\n  nodes: [\"n[1-4]\"]\n  gateways: {gw1: \"n[1-2]\"}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lab:\n  nodes: [\"n[1-4]\"]\nbad:\n  nodes: [n1]\n  gateways: 3\n")
    r = clstr("--profiles", str(prof), "-p", "lab", "--dry-run", "-j", "true")
    assert "  gw1: 2 (n[1-2])" in r.stdout and "  direct: 2 (n[3-4])" in r.stdout, r.stderr
    r = clstr("--profiles", str(bad), "-p", "bad", "-j", "true")
    assert r.returncode == 2 and f"{bad}:5" in r.stderr and "gateways" in r.stderr, r.stderr


def test_an_on_each_node_run_through_gateways_gathers_every_node(clstr, testbed, mark):
    r = clstr("-n", "n[2-8]", "--gateway", "n1=n[2-4]", "--gateway", "n5=n[6-7]", "--gateway-python", gw_python(mark),
              "-E", "echo hello from $(hostname)", "--tag", timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(line.split(":")[0] for line in r.stdout.splitlines()) == [f"n{i}" for i in range(2, 9)]
    assert nothing_left(mark)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def test_a_gateway_that_keeps_asking_for_the_package_gets_one_copy_then_is_refused(clstr, tmp_path):
    """A gateway that asks for clstr's package again and again: one copy goes down, the second ask
    is refused in one line, and its nodes are driven directly."""
    script = tmp_path / "fakepython"
    script.write_text("#!/bin/sh\nfor i in $(seq 500); do echo '{\"t\":\"need\"}'; done\ncat >/dev/null\n")
    script.chmod(0o755)
    r = clstr("-n", "n2", "--gateway", "n1=n2", "--gateway-python", str(script), "-j", "echo ran", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "gateway n1 refused: it asked for clstr's package again after it was sent" in r.stderr
    assert "its node (n2) is driven directly" in r.stderr  # one node: its grammar too
    assert r.stdout == "ran\n"


def test_a_command_template_reaches_the_nodes_behind_a_gateway(clstr, tmp_path, testbed, mark):
    # --connect through a gateway (issue 35): the gateway runs the command for its nodes (containers
    # on another host); here a sh that stands for docker exec, run on the gateway n1
    runtime = ('sh -c \'if [ -e "/nonexistent/stopped-$0" ]; then exit 1; fi; '
               'env CLSTR_HOST="$0" CLSTR_GW_SEEN="$CLSTR_TEST_GW" "$@"\' {host}')
    r = clstr("-n", "c1", "c2", "--gateway", "n1=c[1-2]", "--gateway-python", gw_python(mark),
              "--connect", runtime, "--json", str(tmp_path / "r.json"), "--", "echo $CLSTR_HOST $CLSTR_GW_SEEN {}",
              ":::", "a", "b", "c", "d", timeout=60)
    assert r.returncode == 0, r.stderr
    got = sorted(line.split() for line in r.stdout.splitlines())
    assert sorted(w[2] for w in got) == ["a", "b", "c", "d"] and {w[0] for w in got} <= {"c1", "c2"}
    assert all(w[1] == mark for w in got)  # run by the gateway's side, not the root's
    assert as_json(tmp_path / "r.json")["gateways"]
    assert nothing_left(mark)
