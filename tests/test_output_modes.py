"""Output modes, progress, dry run, JSON and the library API against the real testbed."""
import io
import json
import os
import pty
import select
import signal
import subprocess

import clstr
from conftest import lines, read_until, release


def test_tag_prefixes_node(clstr):
    r = clstr("-n", "n1", "--tag", "-j", "echo a; echo b")
    assert (r.returncode, r.stdout) == (0, "n1: a\nn1: b\n"), r.stderr


def test_tag_job_and_tag(clstr):
    r = clstr("-n", "n1", "--tag-job", "-j", "echo x", "-j", "echo y")
    assert lines(r.stdout) == ["1: x", "2: y"], r.stderr
    r = clstr("-n", "n1", "--tag-job", "--tag", "-j", "echo x; echo e >&2")
    assert (r.stdout, r.stderr) == ("1: n1: x\n", "1: n1: e\n")


def test_group_keeps_each_jobs_output_together(clstr):
    jobs = []
    for name in "ABCD":
        jobs += ["-j", f"for i in 1 2 3 4; do echo {name}$i; sleep 0.05; done"]
    r = clstr("-n", "2/n1", "-n", "2/n2", "--group", *jobs)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert sorted(out) == sorted(f"{n}{i}" for n in "ABCD" for i in range(1, 5))
    blocks = [out[i:i + 4] for i in range(0, 16, 4)]
    assert sorted(b[0][0] for b in blocks) == list("ABCD")
    for b in blocks:
        assert b == [f"{b[0][0]}{i}" for i in range(1, 5)]


def test_output_dir(clstr, tmp_path):
    d = tmp_path / "out"
    r = clstr("-n", "n1", "-n", "n2", "--output-dir", str(d), "-j", "echo one; echo oops >&2",
              "-j", "printf 'two\\nlines\\n'")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert sorted(os.listdir(d)) == ["1.err", "1.out", "2.err", "2.out"]
    assert (d / "1.out").read_text() == "one\n"
    assert (d / "1.err").read_text() == "oops\n"
    assert (d / "2.out").read_text() == "two\nlines\n"
    assert (d / "2.err").read_text() == ""


def test_gather_folds_identical_output(clstr, testbed):
    cmd = f'case "$SSH_CONNECTION" in *" {testbed.addr["n1"]} "*) echo one;; *) echo other; echo x;; esac'
    r = clstr("-n", "n[1-4]", "-E", cmd, "--gather")
    assert r.returncode == 0, r.stderr
    rule = "-" * 15
    assert r.stdout == f"{rule}\nn1 (1)\n{rule}\none\n{rule}\nn[2-4] (3)\n{rule}\nother\nx\n"


def test_dry_run_connects_nowhere(clstr):
    r = clstr("-n", "refused", "-n", "2/hung", "--dry-run", "-j", "echo a", "-j", "echo b", "--timeout", "5")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[:4] == ["nodes: 2 (hung,refused), slots: 3", "jobs: 2", "  job 1: echo a", "  job 2: echo b"]
    assert "limits: --max-nodes all, --max-node-uses none, --max-connecting 32, --timeout 5.0" in out
    assert r.stderr == ""


def test_json_summary(clstr, tmp_path):
    js = tmp_path / "result.json"
    r = clstr("-n", "n1", "-n", "refused", "--json", str(js), "--job-failures", "job",
              "-j", "echo ok", "-j", "exit 4")
    assert r.returncode == 1
    data = json.loads(js.read_text())
    assert data["exit_status"] == 1
    assert data["counts"] == {"jobs": 2, "succeeded": 1, "failed": 1, "not_run": 0, "skipped": 0}
    by_seq = {j["seq"]: j for j in data["jobs"]}
    assert (by_seq[1]["outcome"], by_seq[1]["node"], by_seq[1]["exit"]) == ("succeeded", "n1", 0)
    assert (by_seq[2]["outcome"], by_seq[2]["reason"], by_seq[2]["exit"]) == ("failed", "exit 4", 4)
    refused = data["nodes"]["refused"]
    out = refused.pop("out")
    assert refused == {"attempts": 1, "succeeded": 0, "retired": True, "reason": "refused",
                       "ssh_said": "Connection refused",  # ssh's own words (issue 34 item 4)
                       "configuration_error": False, "removed": False, "busy_refusals": 0}
    assert [(o["reason"], o["back"]) for o in out] == [("refused", None)] and out[0]["left"] > 0
    assert data["nodes"]["n1"]["retired"] is False and data["nodes"]["n1"]["out"] == []


def test_json_to_stdout_needs_output_elsewhere(clstr, tmp_path):
    r = clstr("-n", "n1", "--json", "-", "-j", "echo hi")
    assert r.returncode == 2 and "--json - writes to stdout" in r.stderr
    r = clstr("-n", "n1", "--json", "-", "-o", str(tmp_path / "out.txt"), "-j", "echo hi")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["succeeded"] == 1
    assert (tmp_path / "out.txt").read_text() == "hi\n"


def test_usr1_lists_running_jobs(clstr, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    job = f"cat {gate}"
    p = clstr.popen("-n", "n1", "-j", job, "-j", "echo started", "-m", "2", "-n", "n2",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_until(p.stdout, ["started"])
        p.send_signal(signal.SIGUSR1)
        header = p.stderr.readline()
        # job 2 printed; whether its end was handled yet or not, job 1 is running
        count = int(header.split()[1])
        listed = [p.stderr.readline() for _ in range(count)]
        out, err = release(gate, p, "released\n")
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert header in ("clstr: 1 job running:\n", "clstr: 2 jobs running:\n")
    mine = [line for line in listed if "job 1 " in line]
    assert len(mine) == 1
    assert mine[0].startswith(f"clstr:   n1: job 1 '{job}', running for "), mine
    assert out == "released\n"


def pty_run(clstr, *args):
    """Run clstr with stderr on a pseudo-terminal; returns (exit status, stdout, terminal text)."""
    master, slave = pty.openpty()
    p = clstr.popen(*args, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    out = p.stdout.read()
    p.wait(30)
    return p.returncode, out.decode(), screen.decode()


def test_status_line_on_terminal(clstr):
    code, out, screen = pty_run(clstr, "-n", "n1", "-n", "n2", "--status", "-j", "echo a", "-j", "echo b",
                                "-j", "exit 3", "--job-failures", "job")
    assert code == 1
    assert lines(out) == ["a", "b"]
    assert "\r" in screen and "\x1b[K" in screen
    final = [seg for seg in screen.replace("\r\n", "\n").split("\r") if "jobs complete" in seg][-1]
    assert final.startswith("3 of 3 jobs complete, 0 of 2 nodes running jobs. 1 failed")
    assert "jobs/s" in final and "ETA 0s" in final


def test_progress_bar_on_terminal(clstr):
    code, out, screen = pty_run(clstr, "-n", "n1", "--bar", "-j", "echo a", "-j", "echo b")
    assert code == 0
    assert lines(out) == ["a", "b"]
    import re
    assert re.search(r"\[#{10,40}\] 100% 2 of 2 jobs complete", screen), screen


def test_library_api(testbed, tmp_path):
    out = io.BytesIO()
    result = clstr.run(["echo one", "echo two", "exit 5"], ["n1", "n2", "refused"], ssh=testbed.ssh,
                       job_failures="job", stdout=out, stderr=False, log=lambda m: None)
    assert sorted(out.getvalue().decode().splitlines()) == ["one", "two"]
    assert [j.command for j in result.succeeded] == ["echo one", "echo two"]
    assert [(j.command, j.reason) for j in result.failed] == [("exit 5", "exit 5")]
    assert result.not_run == []
    assert result.retired_nodes == {"refused": "refused"}
    assert result.exit_code() == 1


def test_library_bad_input_raises(testbed):
    import pytest
    with pytest.raises(clstr.InputError, match="no nodes to run on"):
        clstr.run(["true"], [])


def test_bash_completion_script():
    script = os.path.join(os.path.dirname(__file__), "..", "conf", "completions", "clstr")
    probe = (f"source {script}; COMP_WORDS=(clstr --job-f); COMP_CWORD=1; _clstr; echo \"${{COMPREPLY[*]}}\"; "
             f"COMP_WORDS=(clstr --job-failures ''); COMP_CWORD=2; _clstr; echo \"${{COMPREPLY[*]}}\"")
    r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["--job-failures --job-file", "node job"]


def test_stdout_discard_and_stderr_to_file(clstr, tmp_path):
    errf = tmp_path / "err.txt"
    r = clstr("-n", "n1", "-o", "-e", str(errf), "-j", "echo out; echo err >&2")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert errf.read_text() == "err\n"


def test_more_slots_than_one_connection_carries(clstr):
    # 10 slots on one node: two shared connections (8 slots each at most), every job done
    jobs = []
    for i in range(30):
        jobs += ["-j", f"echo j{i}"]
    r = clstr("-n", "10/n3", *jobs)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == sorted(f"j{i}" for i in range(30))


def test_summary_and_json_name_the_slowest_jobs_and_their_nodes(clstr, tmp_path):
    js = tmp_path / "result.json"
    r = clstr("-n", "n1", "-n", "n2", "--json", str(js), "--job-failures", "job",
              "-j", "sleep 0.6", "-j", "true", "-j", "sleep 1.2", "-j", "exit 3")
    assert r.returncode == 1
    data = json.loads(js.read_text())
    slowest = data["slowest"]
    assert [s["seq"] for s in slowest[:2]] == [3, 1]
    by_seq = {j["seq"]: j for j in data["jobs"]}
    assert slowest[0] == {"seq": 3, "node": by_seq[3]["node"], "runtime": by_seq[3]["runtime"],
                          "outcome": "succeeded", "command": "sleep 1.2"}
    assert slowest[0]["runtime"] >= 1.2 and len(slowest) == 4
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("clstr: slowest: ")]
    assert line and line[0].startswith(f"clstr: slowest: job 3 on {by_seq[3]['node']} (")
    assert f", job 1 on {by_seq[1]['node']} (" in line[0]
