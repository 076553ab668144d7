"""--persist (issue 24): shared connections that outlive the run, found and ridden by the next run
with --persist to the same nodes, replaced when dead, ended by --persist-stop; without --persist
nothing outlives the run. Each test has a directory of persisted connections of its own
($XDG_RUNTIME_DIR), and finds the masters by the socket paths in it, nothing broader."""
import json
import os
import shutil
import signal
import tempfile

import pytest

from conftest import wait_for
from sshnodes import Relay


@pytest.fixture
def runtime():
    """A short $XDG_RUNTIME_DIR of the test's (socket paths must stay short); every master whose
    socket is in it is ended at the end, whatever happened."""
    path = tempfile.mkdtemp(prefix="cp", dir="/tmp")
    yield path
    for pid in masters(path):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def masters(runtime):
    """The pids of the ControlMasters whose socket is in ``runtime``'s directory of persisted connections."""
    marker = f"ControlPath={runtime}/clstr-persist-".encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if marker in cmd and b"ControlMaster=yes" in cmd:
            found.append(int(pid))
    return sorted(found)


def persisted(clstr, runtime, *args):
    return clstr("--persist", "60", "-v", *args, env={"XDG_RUNTIME_DIR": runtime})


def reuse_line(err):
    return next(ln for ln in err.splitlines() if ln.startswith("clstr: --persist: "))


def test_a_second_run_rides_the_first_runs_connections(clstr, runtime):
    r = persisted(clstr, runtime, "-n", "n1", "n2", "-E", "echo ran")
    assert (r.returncode, r.stdout) == (0, "ran\nran\n"), r.stderr
    assert reuse_line(r.stderr).startswith("clstr: --persist: 0 connections reused, 2 opened")
    first = masters(runtime)
    assert len(first) == 2  # they outlived the run
    d = os.path.join(runtime, f"clstr-persist-{os.getuid()}")
    assert os.stat(d).st_mode & 0o777 == 0o700
    r = persisted(clstr, runtime, "-n", "n1", "n2", "-E", "echo again", "-j", "x")
    assert r.returncode == 2  # -E and -j: refused, nothing touched
    assert masters(runtime) == first
    r = persisted(clstr, runtime, "-n", "n1", "n2", "-E", "echo again", "--json", "run.json")
    assert (r.returncode, r.stdout) == (0, "again\nagain\n"), r.stderr
    assert reuse_line(r.stderr).startswith("clstr: --persist: 2 connections reused, 0 opened")
    assert masters(runtime) == first  # the same processes: no handshake
    data = json.loads((clstr.cwd / "run.json").read_text())
    assert [len(j["attempts"]) for j in data["jobs"]] == [1, 1]
    # pipelined jobs ride them too
    r = persisted(clstr, runtime, "-n", "n1", "-j", "echo a", "-j", "echo b")
    assert sorted(r.stdout.split()) == ["a", "b"] and "1 connection reused, 0 opened" in r.stderr
    # --persist-stop ends those of the nodes given, then all
    r = clstr("--persist-stop", "-n", "n1", env={"XDG_RUNTIME_DIR": runtime})
    assert (r.returncode, r.stderr) == (0, "clstr: 1 persisted connection ended\n")
    assert wait_for(lambda: len(masters(runtime)) == 1)
    r = clstr("--persist-stop", env={"XDG_RUNTIME_DIR": runtime})
    assert (r.returncode, r.stderr) == (0, "clstr: 1 persisted connection ended\n")
    assert wait_for(lambda: masters(runtime) == [])
    assert os.listdir(d) == []
    r = clstr("--persist-stop", env={"XDG_RUNTIME_DIR": runtime})
    assert (r.returncode, r.stderr) == (0, "clstr: no persisted connection to end\n")


def test_a_master_killed_between_runs_is_replaced_at_no_cost(clstr, runtime):
    r = persisted(clstr, runtime, "-n", "n3", "-E", "echo one")
    assert r.returncode == 0, r.stderr
    (pid,) = masters(runtime)
    os.kill(pid, signal.SIGKILL)  # its socket stays behind, stale
    assert wait_for(lambda: masters(runtime) == [])
    r = persisted(clstr, runtime, "-n", "n3", "-E", "echo two", "--json", "run.json")
    assert (r.returncode, r.stdout) == (0, "two\n"), r.stderr
    assert "0 connections reused, 1 opened" in reuse_line(r.stderr)
    data = json.loads((clstr.cwd / "run.json").read_text())
    assert len(data["jobs"][0]["attempts"]) == 1 and not data["nodes"]["n3"]["out"]
    assert len(masters(runtime)) == 1


@pytest.mark.timeout(90)
def test_a_node_restarted_between_runs_costs_no_attempt(clstr, runtime, testbed):
    node = Relay(testbed, "127.0.0.78").up()
    try:
        r = persisted(clstr, runtime, "-n", node.name, "-E", "echo one")
        assert r.returncode == 0, r.stderr
        assert len(masters(runtime)) == 1
        node.down()  # the node went away with every connection to it, and came back
        node.up()
        # whether its master has noticed yet or not, the job runs once, on the node, no attempt lost
        r = persisted(clstr, runtime, "-n", node.name, "-E", "echo two", "--json", "run.json")
        assert (r.returncode, r.stdout) == (0, "two\n"), r.stderr
        line = reuse_line(r.stderr)
        assert "0 connections reused, 1 opened (" in line or "0 connections reused, 0 opened, 1 found dead" in line
        data = json.loads((clstr.cwd / "run.json").read_text())
        assert len(data["jobs"][0]["attempts"]) == 1 and not data["nodes"][node.name]["out"]
    finally:
        node.down()


@pytest.mark.timeout(90)
def test_a_dead_persisted_connection_not_yet_noticed_is_replaced_at_no_cost(clstr, runtime, testbed):
    node = Relay(testbed, "127.0.0.79").up()
    try:
        r = persisted(clstr, runtime, "-n", node.name, "-E", "echo one")
        assert r.returncode == 0, r.stderr
        (first,) = masters(runtime)
        node.reboot()  # its master still runs and answers on its socket: it has sent nothing since
        r = persisted(clstr, runtime, "-n", node.name, "-E", "echo two", "--json", "run.json")
        assert (r.returncode, r.stdout) == (0, "two\n"), r.stderr
        # the job ran once, on its node, at no cost (over a connection of its own: ssh itself went on
        # without the dead master), and the dead one is not counted as reused; the next run opens anew
        assert f"clstr: {node.name}: its persisted connection was dead: " in r.stderr
        assert "0 connections reused, 0 opened, 1 found dead (" in reuse_line(r.stderr)
        data = json.loads((clstr.cwd / "run.json").read_text())
        assert len(data["jobs"][0]["attempts"]) == 1 and not data["nodes"][node.name]["out"]
        assert first not in masters(runtime)
        r = persisted(clstr, runtime, "-n", node.name, "-E", "echo three")
        assert (r.returncode, r.stdout) == (0, "three\n"), r.stderr
        assert len(masters(runtime)) == 1
    finally:
        node.down()


def test_without_persist_nothing_outlives_the_run(clstr, runtime):
    r = clstr("-n", "n1", "n2", "-j", "echo a", "-j", "echo b", env={"XDG_RUNTIME_DIR": runtime})
    assert r.returncode == 0, r.stderr
    assert masters(runtime) == [] and not os.path.exists(os.path.join(runtime, f"clstr-persist-{os.getuid()}"))


@pytest.mark.parametrize("args,message", [
    (["--persist", "soon", "-n", "n1", "-j", "x"], "clstr: argument --persist: expected a duration (30, 90s, 5m, 2h, 1d), "
                                                    "got 'soon' (see clstr --help)"),
    (["--persist", "0", "-n", "n1", "-j", "x"], "clstr: --persist must be more than 0 and at most 31622400 seconds "
                                                 "(a year), got 0"),
    (["--persist", "5m", "--no-multiplex", "-n", "n1", "-j", "x"],
     "clstr: --persist keeps the shared connections: not with --no-multiplex"),
])
def test_bad_persist_values_are_one_line(clstr, runtime, args, message):
    r = clstr(*args, env={"XDG_RUNTIME_DIR": runtime})
    assert (r.returncode, r.stdout, r.stderr) == (2, "", message + "\n")


def test_a_directory_of_persisted_connections_open_to_others_is_refused(clstr, runtime):
    d = os.path.join(runtime, f"clstr-persist-{os.getuid()}")
    os.mkdir(d, 0o755)
    os.chmod(d, 0o755)
    r = persisted(clstr, runtime, "-n", "n1", "-E", "true")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f"clstr: {d}: not a private directory of ours (a link, another owner, or open to others): "
                        "persisted connections are not kept there\n")


def test_a_profile_may_persist_its_connections(clstr, runtime, tmp_path):
    (tmp_path / "p.yaml").write_text("lab: {nodes: [n4], persist: 2m}\n")
    (tmp_path / "bad.yaml").write_text("lab: [n4]\nbad: {nodes: [n4], persist: soon}\n")
    r = clstr("--profiles", "p.yaml", "-p", "lab", "-v", "-E", "echo ran", env={"XDG_RUNTIME_DIR": runtime})
    assert (r.returncode, r.stdout) == (0, "ran\n"), r.stderr
    assert "clstr: --persist: 0 connections reused, 1 opened (they stay 2m00s idle" in r.stderr
    assert len(masters(runtime)) == 1
    r = clstr("--profiles", "bad.yaml", "-p", "bad", "-E", "true", env={"XDG_RUNTIME_DIR": runtime})
    assert (r.returncode, r.stderr) == (2, "clstr: bad.yaml:2: profile 'bad': key 'persist' must be a duration such as "
                                           "300, 90s, 5m or 2h (as --persist)\n")
