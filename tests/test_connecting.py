"""A node that hangs while connecting holds no job a ready slot could run (issue 36 item 4), over
the real testbed: ``hung`` accepts TCP and never speaks."""
import json

import pytest


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", [[], ["--no-multiplex"]])  # a shared connection, or a session a slot
def test_a_hung_node_gives_its_job_to_the_slot_that_is_ready(clstr, tmp_path, mode):
    # a connect timeout of 30 s: job b, held by hung, would run 30 s late and after a failed attempt
    r = clstr("-v", *mode, "--connect-timeout", "30", "--json", "run.json", "-n", "n1", "hung", "-j", "echo a",
              "-j", "echo b")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == ["a", "b"]
    data = json.loads((tmp_path / "run.json").read_text())
    attempts = {j["command"]: [(a["node"], a["outcome"]) for a in j["attempts"]] for j in data["jobs"]}
    # b's one attempt is n1's: the slot still connecting to hung never started it, no attempt spent
    assert attempts == {"echo a": [("n1", "succeeded")], "echo b": [("n1", "succeeded")]}
    assert "job 2: hung is still connecting after" in r.stderr
    assert "the job goes to n1, whose connection is up" in r.stderr
    # the run ended without waiting to learn about hung, and says so
    assert "retired" not in r.stderr
    assert "node hung: still connecting after" in r.stderr
    assert "when the run ended (its job ran elsewhere)" in r.stderr


@pytest.mark.timeout(60)
def test_a_job_of_its_own_stays_with_its_node(clstr, tmp_path):
    # --on-each-node: hung's job is hung's, and no other slot takes it
    r = clstr("--connect-timeout", "2", "--json", "run.json", "-n", "n1", "hung", "--on-each-node", "echo x")
    assert r.returncode == 1, r.stderr
    data = json.loads((tmp_path / "run.json").read_text())
    ends = {j["node"]: (j["outcome"], [a["node"] for a in j["attempts"]]) for j in data["jobs"]}
    assert ends == {"n1": ("succeeded", ["n1"]), "hung": ("not run", ["hung"])}


def _ssh_line(tmp_path, *args):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "clstr", "--dry-run", "-n", "lab1", "-j", "x", *args],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60, env=_no_clstr_ssh())
    assert r.returncode == 0, r.stderr
    return next(line for line in r.stdout.splitlines() if line.startswith("ssh: "))


def _no_clstr_ssh():
    import os
    env = dict(os.environ)
    env.pop("CLSTR_SSH", None)
    return env


@pytest.mark.parametrize("config,args,seconds", [
    ("Host *\n  ConnectTimeout 3\n", [], 3),  # the user's own value: clstr's default does not override it
    ("Host lab*\n  ConnectTimeout 4\nHost *\n  ConnectTimeout 3\n", [], 4),  # as ssh -G reads it for the node
    ("Host *\n  ConnectTimeout 3\n", ["--connect-timeout", "7"], 7),  # the option, given here, wins
    ("Host *\n  ConnectTimeout 3\n", ["-O", "ConnectTimeout=5"], 5),  # as does -O (ssh's first value)
    ("Host *\n  User someone\n", [], 10),  # none set: clstr's default
])
def test_clstrs_default_connect_timeout_does_not_override_the_users_ssh_config(tmp_path, config, args, seconds):
    (tmp_path / "my_config").write_text(config)
    line = _ssh_line(tmp_path, "--ssh", "ssh -F my_config", *args)
    assert f" -o BatchMode=yes -o ConnectTimeout={seconds} " in line, line


@pytest.mark.parametrize("slots,seen_up,said", [
    # (node, withdrawn) of each slot; the nodes that connected in the run; the nodes named
    ([("hung", True), ("n1", False)], {"n1"}, ["hung"]),  # never connected: the run did not wait for it
    ([("busy", True), ("busy", False)], {"busy"}, []),  # one more session of a node that connected
    ([("a", True), ("b", True)], set(), ["a", "b"]),
    ([("a", False)], set(), []),  # nothing withdrawn: nothing to say
])
def test_the_runs_end_names_the_nodes_it_did_not_wait_for_that_never_connected(slots, seen_up, said):
    from types import SimpleNamespace as NS
    from clstr.narration import Narrator
    sched = NS(slots=[NS(index=i, node=n, withdrawn=w) for i, (n, w) in enumerate(slots)],
               nodes={n: NS(seen_up=n in seen_up) for n, _ in slots})
    lines = []
    Narrator(lines.append, False, sched, None).unwaited([0.0] * len(slots))
    assert [line.split(":")[0] for line in lines] == [f"node {n}" for n in said]
    assert all(line.endswith("when the run ended (its job ran elsewhere)") for line in lines)
