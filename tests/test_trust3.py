"""Trust, round three (issue 32): files on shared filesystems, returns that change or cannot be
placed, a full disk here, returns that would overwrite each other, a full stdout, against the
real sshd testbed. Its nodes share this machine's filesystem, as nodes with an NFS home do."""
import contextlib
import json
import os
import signal
import subprocess

import pytest

from conftest import wait_for
from test_transfer import digest, make


def records(cwd):
    result = json.loads((cwd / "out.json").read_text())
    rows = {int(r.split("\t")[0]): r.split("\t") for r in (cwd / "log").read_text().splitlines()[1:]}
    return result, rows


def stray(path):
    """clstr's own files left under ``path`` (marks, holds, partial files)."""
    return sorted(str(p) for p in path.rglob(".clstr*"))


# ---- 1. a node that shares the filesystem ---------------------------------------------------

def test_trc_of_an_absolute_input_on_a_shared_filesystem_keeps_the_input_and_its_result(clstr, tmp_path):
    make(tmp_path / "a.in", 300_000, 1)
    before = digest(tmp_path / "a.in")
    r = clstr("-n", "n1", "--json", "out.json", "--joblog", "log", "--trc", "{}.out", "--",
              "cp {} {}.out", ":::", str(tmp_path / "a.in"))
    assert r.returncode == 0, r.stderr
    # the node's path is the file here: never written over, never removed; the result stays home
    assert digest(tmp_path / "a.in") == before
    assert digest(tmp_path / "a.in.out") == before
    assert stray(tmp_path) == []
    result, rows = records(tmp_path)
    assert result["jobs"][0]["outcome"] == "succeeded"


def test_trc_with_wd_dot_on_a_shared_filesystem_keeps_the_input_and_its_result(clstr, tmp_path):
    (tmp_path / "b.in").write_text("b\na\n")
    r = clstr("-n", "n1", "--wd", ".", "--trc", "{}.out", "--", "sort {} > {}.out", ":::", "b.in")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b.in").read_text() == "b\na\n"
    assert (tmp_path / "b.in.out").read_text() == "a\nb\n"
    assert stray(tmp_path) == []


def test_basefile_with_cleanup_on_a_shared_filesystem_is_not_removed(clstr, tmp_path):
    (tmp_path / "simulate").write_text("#!/bin/sh\necho simulated $1\n")
    os.chmod(tmp_path / "simulate", 0o755)
    r = clstr("-n", "n1", "-n", "n2", "--wd", ".", "--basefile", "simulate", "--cleanup", "--",
              "sh ./simulate {}", ":::", "1", "2", "3")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["simulated 1", "simulated 2", "simulated 3"]
    assert (tmp_path / "simulate").read_text() == "#!/bin/sh\necho simulated $1\n"
    assert stray(tmp_path) == []


@pytest.mark.parametrize("zipapp", [False, True])
def test_through_a_gateway_a_shared_filesystem_keeps_inputs_results_and_basefiles(clstr, tmp_path, zipapp):
    """The gateway's nodes see the root's filesystem: the marks are the root's, made beside its files."""
    from test_gateway import gw_python
    make(tmp_path / "a.in", 200_000, 2)
    before = digest(tmp_path / "a.in")
    (tmp_path / "base").write_text("base v1\n")
    r = clstr("-n", "n2", "n3", "--gateway", "n1=n[2-3]", "--gateway-python", gw_python("trust3", zipapp),
              "--basefile", str(tmp_path / "base"), "--cleanup", "--trc", "{}.out", "--",
              "cat {} > {}.out; cat %s >/dev/null" % (tmp_path / "base"), ":::", str(tmp_path / "a.in"))
    assert r.returncode == 0, r.stderr
    assert digest(tmp_path / "a.in") == before and digest(tmp_path / "a.in.out") == before
    assert (tmp_path / "base").read_text() == "base v1\n"
    assert stray(tmp_path) == []


def test_nodes_sharing_a_directory_keep_a_sent_file_while_one_of_them_still_uses_it(clstr, tmp_path):
    """-E --tf input --cleanup on nodes that share the work directory: n1's job ends and cleans up
    first; n2's job reads the input only once n1's row is in the job log."""
    (tmp_path / "input.tsv").write_text("2\n1\n")
    remote = tmp_path / "remote"
    job = ('case "$SSH_CONNECTION" in *" 127.0.0.3 "*) '
           f'i=0; until grep -q "	n1	" {tmp_path}/log || [ $i -ge 400 ]; do sleep 0.05; i=$((i+1)); done;; esac; '
           "sort input.tsv")
    r = clstr("-n", "n1", "n2", "--wd", str(remote), "--joblog", str(tmp_path / "log"), "--tf", "input.tsv",
              "--cleanup", "--job-failures", "job", "-E", job)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1", "2", "1", "2"]
    assert (tmp_path / "input.tsv").read_text() == "2\n1\n"
    assert not (remote / "input.tsv").exists()  # the last one done with it removed it
    assert stray(tmp_path) == []


def test_a_send_that_fails_leaves_what_was_there(clstr, tmp_path):
    """A send that cannot be written (its place is a directory on the node) is refused whole."""
    remote = tmp_path / "remote"
    (remote / "in.dat").mkdir(parents=True)
    (tmp_path / "in.dat").write_text("data\n")
    r = clstr("-n", "n1", "--wd", str(remote), "--json", "out.json", "--joblog", "log",
              "--tf", "in.dat", "--", "cat in.dat", ":::", "x")
    assert r.returncode == 1
    assert "send: in.dat" in r.stderr and "Is a directory" in r.stderr
    assert (remote / "in.dat").is_dir() and (tmp_path / "in.dat").read_text() == "data\n"
    assert stray(tmp_path) == []


# ---- 2. a return that changes while it is brought back --------------------------------------

def test_a_return_truncated_while_it_is_read_fails_the_job_at_once_and_the_node_stays(clstr, tmp_path):
    remote = tmp_path / "remote"
    # the job leaves a process that empties big.out once something holds it open (the return)
    job = (": {}; head -c 150000000 /dev/zero > big.out; "
           "(i=0; while [ $i -lt 3000 ]; do if ls -l /proc/[0-9]*/fd 2>/dev/null | grep -q \"$PWD/big.out\"; "
           "then : > big.out; exit; fi; i=$((i+1)); done) >/dev/null 2>&1 &")
    r = clstr("-n", "n1", "--wd", str(remote), "--json", "out.json", "--joblog", "log",
              "--return", "big.out", "--", job, ":::", "1", timeout=120)
    assert r.returncode == 1, r.stderr
    assert "return: big.out changed while it was brought back" in r.stderr
    assert "retired" not in r.stderr
    result, rows = records(tmp_path)
    job = result["jobs"][0]
    assert job["outcome"] == "failed" and len(job["attempts"]) == 1
    assert not (tmp_path / "big.out").exists() and stray(tmp_path) == []


# ---- 3. a return that cannot take its place here ------------------------------------------

def test_a_return_that_cannot_take_its_place_fails_the_job_in_every_record(clstr, tmp_path):
    (tmp_path / "res.out").mkdir()
    remote = tmp_path / "remote"
    r = clstr("-n", "n1", "--wd", str(remote), "--json", "out.json", "--joblog", "log",
              "--return", "res.out", "--", "echo {} > res.out", ":::", "1")
    assert r.returncode == 1, r.stderr
    assert "return: res.out: could not take its place: a directory is there on this machine" in r.stderr
    assert "retired" not in r.stderr
    result, rows = records(tmp_path)
    assert result["jobs"][0]["outcome"] == "failed"
    assert rows[1][6] != "0"  # Exitval
    assert result["counts"]["succeeded"] == 0
    assert stray(tmp_path) == []


# ---- 11. a full disk here ---------------------------------------------------------------------

@contextlib.contextmanager
def tiny_disk(path, size="64k"):
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_full_disk_here_names_the_file_and_this_machine_and_the_node_stays(clstr, tmp_path):
    remote = tmp_path / "remote"
    with tiny_disk(tmp_path / "out"):
        r = clstr("-n", "n1", "--wd", str(remote), "--json", "out.json", "--joblog", "log",
                  "--return", "out/{}.res", "--", "mkdir -p out && head -c 1000000 /dev/zero > out/{}.res",
                  ":::", "7")
        assert r.returncode == 1, r.stderr
        assert "return: out/7.res: no space left on this machine" in r.stderr
        assert "retired" not in r.stderr
        assert os.listdir(tmp_path / "out") == []
    result, _ = records(tmp_path)
    assert len(result["jobs"][0]["attempts"]) == 1


# ---- 12. returns that would land on one place here -----------------------------------------

@pytest.mark.parametrize("args", [
    ["--return", "same.out", "--", "echo {} > same.out", ":::", "a", "b", "c"],
    ["-n", "n3", "n4", "--return", "X", "-E", "hostname > X"],
])
def test_returns_that_render_to_one_name_are_refused_before_the_run(clstr, tmp_path, args):
    r = clstr("-n", "n1", "n2", *args)
    assert r.returncode == 2
    line, = r.stderr.splitlines()
    assert "jobs 1 and 2 would both bring it back to one place here" in line
    assert "{#}" in line


# ---- 14. output to a full device --------------------------------------------------------------

def test_output_to_a_full_device_is_one_line_and_the_records_are_written(clstr, tmp_path):
    with open("/dev/full", "wb") as full:
        p = subprocess.run(clstr.argv("-n", "n1", "--json", "out.json", "--joblog", "log", "-j", "echo hi"),
                           stdout=full, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=clstr.env(),
                           timeout=60)
    assert "Traceback" not in p.stderr
    assert "No space left on device" in p.stderr
    assert (tmp_path / "log").exists() and json.loads((tmp_path / "out.json").read_text())["jobs"]


# ---- 13. a basefile that changes during the run ------------------------------------------------

def test_a_basefile_changed_during_the_run_is_not_sent_in_a_second_version(clstr, tmp_path):
    """The first node's attempt changes the basefile here and fails (its node is retired); the job
    moves to the next node, which must not get the new version."""
    (tmp_path / "base").write_text("v1\n")
    remote = tmp_path / "remote"
    job = (f"if [ -e {tmp_path}/flag ]; then cat base; "
           f"else touch {tmp_path}/flag; echo v2, changed > {tmp_path}/base; exit 1; fi")
    r = clstr("-n", "n1", "n2", "--wd", str(remote), "--basefile", "base", "-j", job)
    assert r.returncode == 1, r.stderr
    assert "v2" not in r.stdout
    assert "--basefile base: it changed during the run" in r.stderr


# ---- 5. SIGTERM to clstr's whole process group during a return --------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_whole_process_group_during_a_return_leaves_no_partial_file(clstr, tmp_path, sig):
    remote = tmp_path / "remote"
    p = subprocess.Popen(clstr.argv("-n", "n1", "--wd", str(remote), "--json", "out.json", "--return", "big.out",
                                    "--", ": {}; head -c 400000000 /dev/zero > big.out", ":::", "1"),
                         cwd=tmp_path, env=clstr.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        assert wait_for(lambda: any(n.startswith(".clstr-part-") for n in os.listdir(tmp_path)), 60)
        os.killpg(p.pid, sig)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 128 + sig, err
    assert stray(tmp_path) == [] and not (tmp_path / "big.out").exists()
    assert "died" not in err
    job, = json.loads((tmp_path / "out.json").read_text())["jobs"]
    assert job["outcome"] == "not run" and job["reason"] == "interrupted"


# ---- 9. a full temporary directory on a gateway --------------------------------------------------

def test_a_full_temporary_directory_on_a_gateway_fails_those_files_and_the_gateway_goes_on(clstr, tmp_path):
    from test_gateway import gw_python
    remote = tmp_path / "remote"
    for name in ("a", "c"):
        (tmp_path / name).write_text(f"{name}\n")
    make(tmp_path / "b", 1 << 20, 3)
    with tiny_disk(tmp_path / "gwtmp", "256k"):
        python = f"env TMPDIR={tmp_path / 'gwtmp'} " + gw_python("trust3-full")
        r = clstr("-n", "n2", "--gateway", "n1=n2", "--gateway-python", python, "--wd", str(remote),
                  "--json", "out.json", "--joblog", "log", "--tf", "{}", "--return", "{}.res", "--",
                  "cat {} > {}.res; if [ {} = c ]; then head -c 1000000 /dev/zero > {}.res; fi", ":::", "a", "b", "c")
    assert r.returncode == 1, r.stderr
    assert "lost" not in r.stderr and "retired" not in r.stderr
    result, _ = records(tmp_path)
    by = {j["seq"]: j for j in result["jobs"]}
    assert by[1]["outcome"] == "succeeded" and (tmp_path / "a.res").read_text() == "a\n"
    assert by[2]["outcome"] == "failed" and by[2]["reason"] == "send: b: no space left on gateway n1"
    assert by[3]["outcome"] == "failed"
    # named as the root names it (the gateway says which of the job's files, not its path)
    assert by[3]["reason"] == "return: c.res: no space left on gateway n1"
    assert all(len(j["attempts"]) == 1 for j in result["jobs"])


# ---- 8. a large --env value --------------------------------------------------------------------

@pytest.mark.parametrize("mode", [[], ["--no-pipeline"], ["-E"]])
def test_a_100_kb_env_value_reaches_the_job_in_every_mode(clstr, mode):
    value = "v!'\"$x " * 100 + "y" * 99_000  # 100 KB, quotes and all
    job = ["-j", 'printf "%s" "$BIG" | wc -c'] if mode != ["-E"] else ['printf "%s" "$BIG" | wc -c']
    r = clstr("-n", "n1", "--env", "BIG", *mode, *job, env={"BIG": value})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(len(value.encode()))]


def test_an_env_too_large_for_any_command_line_is_refused_before_the_run(clstr, tmp_path):
    r = clstr("-n", "n1", "--env", "BIG", "-j", f"touch {tmp_path}/ran", env={"BIG": "x" * 125_000})
    assert r.returncode == 2
    line, = r.stderr.splitlines()
    assert line.startswith("clstr: --env BIG: the values come to 125,") and "at most 120,000" in line
    assert not (tmp_path / "ran").exists()


# ---- 4. --persist runs started at once ---------------------------------------------------------

@pytest.mark.parametrize("mode", [["-E", "echo ran"], ["-j", "echo ran", "-j", "echo ran"]])
def test_persist_runs_started_at_once_leave_one_findable_master_a_node(clstr, mode):
    """Three --persist runs at once: one opens each node's master, the others ride it; every master
    left holds its socket, and --persist-stop ends them all."""
    from test_persist import masters
    import tempfile
    import shutil
    runtime = tempfile.mkdtemp(prefix="cp", dir="/tmp")
    env = {"XDG_RUNTIME_DIR": runtime}
    try:
        procs = [clstr.popen("--persist", "60", "-n", "n[1-6]", *mode, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        sockets = [n for n in os.listdir(os.path.join(runtime, f"clstr-persist-{os.getuid()}"))
                   if not n.endswith((".err", ".lock"))]
        assert len(masters(runtime)) == len(sockets) == (6 if mode[0] == "-E" else len(sockets)) > 0
        r = clstr("--persist-stop", env=env)
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: not masters(runtime), 15)
    finally:
        for pid in masters(runtime):
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_directory_planted_where_a_persisted_socket_goes_leaves_no_master(clstr):
    from test_persist import masters
    import tempfile
    import shutil
    runtime = tempfile.mkdtemp(prefix="cp", dir="/tmp")
    env = {"XDG_RUNTIME_DIR": runtime}
    try:
        assert clstr("--persist", "60", "-n", "n1", "-E", "true", env=env).returncode == 0
        where = os.path.join(runtime, f"clstr-persist-{os.getuid()}")
        socket, = [n for n in os.listdir(where) if not n.endswith((".err", ".lock"))]
        assert clstr("--persist-stop", env=env).returncode == 0
        assert wait_for(lambda: not masters(runtime), 15)
        os.mkdir(os.path.join(where, socket))
        r = clstr("--persist", "60", "-n", "n1", "-E", "echo ran", env=env)
        assert r.returncode == 1 and "could not take its socket" in r.stderr, r.stderr
        assert masters(runtime) == []
    finally:
        for pid in masters(runtime):
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(runtime, ignore_errors=True)


# ---- 15. -E job numbers and --resume-failed ----------------------------------------------------

def test_on_each_node_job_numbers_are_the_nodes_places_in_every_run(clstr, tmp_path, testbed):
    """n2 fails the first run; --resume-failed runs it again as job 2, the row pairs with n2."""
    n2 = testbed.addr["n2"]
    job = f'case "$SSH_CONNECTION" in *" {n2} "*) [ -e {tmp_path}/fixed ];; esac'
    r = clstr("-n", "n1", "n2", "n3", "--joblog", "log", "-E", job)
    assert r.returncode == 1
    (tmp_path / "fixed").touch()
    r = clstr("-n", "n1", "n2", "n3", "--joblog", "log", "--resume-failed", "--json", "out.json", "-E", job)
    assert r.returncode == 0, r.stderr
    jobs = json.loads((tmp_path / "out.json").read_text())["jobs"]
    assert [(j["seq"], j["node"]) for j in jobs] == [(2, "n2")]
    rows = [ln.split("\t") for ln in (tmp_path / "log").read_text().splitlines()[1:]]
    assert {(int(r[0]), r[1]) for r in rows} == {(1, "n1"), (2, "n2"), (3, "n3")}


def test_resuming_a_changed_on_each_node_command_says_it_runs_everywhere(clstr):
    assert clstr("-n", "n1", "n2", "--joblog", "log", "-E", "echo one").returncode == 0
    r = clstr("-n", "n1", "n2", "--joblog", "log", "--resume", "-E", "echo two")
    assert r.returncode == 0 and r.stdout == "two\ntwo\n"
    assert "clstr: --resume: log has no row of this command (it changed?): it runs on every node" in r.stderr


# ---- 6. long lines from concurrent jobs ----------------------------------------------------------

@pytest.mark.parametrize("mode", [[], ["--no-pipeline"], ["-E"]])
def test_long_lines_of_concurrent_jobs_come_out_whole(clstr, tmp_path, mode):
    """Four jobs each write one 12 MB line at once: four lines out, each one job's bytes alone."""
    size = 12_000_000
    if mode == ["-E"]:
        # the node's place decides its letter: n1..n4 are 127.0.0.2..5
        job = (f'l=$(echo "$SSH_CONNECTION" | cut -d" " -f3 | cut -d. -f4); '
               f'head -c {size} /dev/zero | tr "\\0" "$(printf "\\\\$(printf %o $((63 + l)))")"; echo')
        args = ["-n", "n1", "n2", "n3", "n4", "-E", job]
    else:
        args = ["-n", "4/n1", *mode, "--", f'head -c {size} /dev/zero | tr "\\0" {{}}; echo', ":::", "A", "B", "C", "D"]
    with open(tmp_path / "out", "wb") as out:
        p = subprocess.run(clstr.argv(*args), stdout=out, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                           env=clstr.env(), timeout=120)
    assert p.returncode == 0, p.stderr
    with open(tmp_path / "out", "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    assert sorted(ln[:1] for ln in lines[:4]) == [b"A", b"B", b"C", b"D"]
    for ln in lines[:4]:
        assert len(ln) == size and ln.count(ln[:1]) == size


def test_waiting_output_past_its_memory_bound_goes_to_a_file_and_comes_back_in_order():
    from clstr.output import Waiting
    w = Waiting(limit=10)
    pieces = [(1, b"abc"), (2, b"defgh"), (1, b"ijklmnop"), (3, b""), (2, b"q" * 100)]
    for seq, data in pieces:
        w.add(seq, data)
    assert w.bytes <= 10 and w.file is not None  # the rest is in the file, not in memory
    assert list(w.drain()) == pieces
    assert not w and list(w.drain()) == []
