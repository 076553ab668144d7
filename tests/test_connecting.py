"""A node that hangs while connecting holds no job a ready slot could run (issue 36 item 4), over
the real testbed: ``hung`` accepts TCP and never speaks."""
import json

import pytest


@pytest.mark.timeout(60)
def test_a_hung_node_gives_its_job_to_the_slot_that_is_ready(clstr, tmp_path):
    # a connect timeout of 30 s: job b, held by hung, would run 30 s late and after a failed attempt
    r = clstr("-v", "--connect-timeout", "30", "--json", "run.json", "-n", "n1", "hung", "-j", "echo a",
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
