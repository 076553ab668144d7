"""Files to the node and back (--transferfile, --return, --trc, --basefile, --workdir, --cleanup)
against the real sshd testbed. The testbed's nodes share this machine's disk, so a test gives each
run a work directory of its own (absolute) and looks there for what the nodes saw."""
import hashlib
import json
import os
import shutil
import signal
import subprocess

import psutil
import pytest

from conftest import wait_for
from sshnodes import Relay
from test_failures import run_marker


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make(path, size, seed=0):
    """A file of ``size`` bytes of changing content (a repeated random block, so that a lost or
    reordered piece shows in its checksum)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 32768  # 1 MiB
    with open(path, "wb") as f:
        left = size
        while left:
            piece = block[:left] if left < len(block) else block
            f.write(piece)
            left -= len(piece)
            block = block[1:] + block[:1]  # each MiB differs from the last


def records(tmp_path):
    result = json.loads((tmp_path / "out.json").read_text())
    rows = {int(r.split("\t")[0]): r.split("\t") for r in (tmp_path / "log").read_text().splitlines()[1:]}
    return result, rows


@pytest.mark.parametrize("sizes", [[1024, 1 << 20, 100 << 20]])
def test_trc_round_trip_is_byte_identical(clstr, tmp_path, sizes):
    (tmp_path / "in").mkdir()
    names = []
    for i, size in enumerate(sizes):
        make(tmp_path / "in" / f"f{i}.dat", size, i)
        names.append(f"in/f{i}.dat")
    remote = tmp_path / "remote"
    r = clstr("-n", "2/n1", "-n", "n2", "--wd", str(remote), "--joblog", "log", "--json", "out.json",
              "--trc", "out/{/.}.res", "--", "mkdir -p out && cp {} out/{/.}.res", ":::", *names)
    assert r.returncode == 0, r.stderr
    for i, size in enumerate(sizes):
        assert digest(tmp_path / "out" / f"f{i}.res") == digest(tmp_path / "in" / f"f{i}.dat")
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".clstr")]  # no partial left here
    assert not list(remote.rglob("f*"))  # --trc cleans up: nothing of the jobs left on the node
    result, rows = records(tmp_path)
    for j in result["jobs"]:
        size = sizes[j["seq"] - 1]
        a = j["attempts"][-1]
        assert (a["sent"], a["received"]) == (size, size) and a["transfer"] >= 0
        assert rows[j["seq"]][4:6] == [str(size), str(size)]  # the job log's Send and Receive


def test_a_gigabyte_streams_through_without_being_held(clstr, tmp_path):
    if shutil.disk_usage(tmp_path).free < 6 << 30:
        pytest.skip("fewer than 6 GB free for a 1 GB round trip (sent, copied on the node, returned)")
    make(tmp_path / "big.dat", 1 << 30, 7)
    remote = tmp_path / "remote"
    p = clstr.popen("-n", "n1", "--wd", str(remote), "--trc", "{}.back", "--", "cp {} {}.back", ":::", "big.dat",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    try:
        while p.poll() is None:
            try:
                tree = [psutil.Process(p.pid)] + psutil.Process(p.pid).children(recursive=True)
                peak = max(peak, sum(q.memory_info().rss for q in tree if "python" in q.name()))
            except psutil.Error:
                pass
            wait_for(lambda: p.poll() is not None, 0.2)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert digest(tmp_path / "big.dat.back") == digest(tmp_path / "big.dat")
    assert peak < 300 << 20  # clstr's own processes: far below the file's size


@pytest.mark.parametrize("name", ["a b.txt", "it's", "-lead", "\u00fcn\u00ee c\u00f6d\u00e9.dat", "q\"uote;x"])
def test_odd_file_names_travel(clstr, tmp_path, name):
    (tmp_path / name).write_text(f"content of {name}\n")
    remote = tmp_path / "remote"
    r = clstr("-n", "n1", "--wd", str(remote), "--trc", "{}.out", "--", "cat ./{} > ./{}.out", ":::", name)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / f"{name}.out").read_text() == f"content of {name}\n"


def test_names_with_line_breaks_or_dots_up_are_refused_before_anything_runs(clstr, tmp_path):
    r = clstr("-n", "n1", "--trc", "{}.out", "--", "touch ran", ":::", "a\nb")
    assert r.returncode == 2 and "holds a line break" in r.stderr
    (tmp_path / "ok").write_text("x")
    r = clstr("-n", "n1", "--tf", "{}", "--return", "../{}.escaped", "--", "touch ran", ":::", "ok")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "a path with '..' is refused" in r.stderr
    r = clstr("-n", "n1", "--tf", "{}", "--", "touch ran", ":::", "missing.dat")
    assert r.returncode == 2 and r.stderr == "clstr: --transferfile missing.dat (job 1): no such file here\n"
    assert not (tmp_path / "ran").exists()


def test_a_job_that_does_not_make_its_return_file_fails_naming_it(clstr, tmp_path):
    remote = tmp_path / "remote"
    r = clstr("-n", "n1", "--job-failures", "job", "--wd", str(remote), "--return", "out/{}.res", "--json",
              "out.json", "--joblog", "log", "--", "true", ":::", "7")
    assert r.returncode == 1
    assert "failed: job 1 on n1 (return: " + str(remote) + "/out/7.res: no such file on n1)" in r.stderr
    result, rows = records(tmp_path)
    assert result["jobs"][0]["outcome"] == "failed" and rows[1][6] == "255"
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    assert "retired" not in r.stderr  # job mode: the job's failure, its node stays


def test_basefile_goes_once_to_each_node_and_workdir_dots_is_removed_with_cleanup(clstr, tmp_path):
    (tmp_path / "base.txt").write_text("shared\n")
    home_runs = os.path.expanduser("~/.clstr/work")
    before = set(os.listdir(home_runs)) if os.path.isdir(home_runs) else set()
    r = clstr("-n", "3/n1", "-n", "3/n2", "--bf", "base.txt", "--wd", "...", "--cleanup", "--joblog", "log",
              "--json", "out.json", "--", "cat base.txt; pwd", ":::", *[str(i) for i in range(12)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("shared\n") == 12
    workdirs = {line for line in r.stdout.splitlines() if line != "shared"}
    assert len(workdirs) == 1 and f"{home_runs}/" in workdirs.pop()  # one directory of the run
    result, rows = records(tmp_path)
    assert sorted(int(row[4]) for row in rows.values()) == [0] * 10 + [7, 7]  # once a node, on its first job
    after = set(os.listdir(home_runs)) if os.path.isdir(home_runs) else set()
    assert after == before  # removed at the end


def test_cleanup_after_trc_removes_the_directories_clstr_made_and_no_other(clstr, tmp_path):
    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "data" / "deep" / "x.txt").write_text("x\n")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "y.txt").write_text("y\n")
    remote = tmp_path / "remote"
    (remote / "keep").mkdir(parents=True)  # the user's own directory, empty, there before the run
    r = clstr("-n", "n1", "--wd", str(remote), "--trc", "{}.out", "--",
              "mkdir -p made && touch made/z && cat {} > {}.out", ":::", "data/deep/x.txt", "keep/y.txt")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "data" / "deep" / "x.txt.out").read_text() == "x\n"  # brought back here
    assert not (remote / "data").exists()  # clstr made data/ and data/deep/ for its file: gone with it
    assert (remote / "keep").is_dir() and not list((remote / "keep").iterdir())  # the user's stays, empty
    assert (remote / "made" / "z").exists()  # what the job made is the job's


def test_workdir_is_kept_without_cleanup(clstr, tmp_path):
    remote = tmp_path / "remote" / "deep"
    (tmp_path / "in.txt").write_text("x\n")
    r = clstr("-n", "n1", "--wd", str(remote), "--tf", "{}", "--", "cp {} copied.txt", ":::", "in.txt")
    assert r.returncode == 0, r.stderr
    assert (remote / "in.txt").read_text() == "x\n" and (remote / "copied.txt").exists()


def test_a_full_disk_on_the_node_fails_the_send_naming_the_file_and_the_cause(clstr, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        make(tmp_path / "big.dat", 1 << 20)
        r = clstr("-n", "n1", "--job-failures", "job", "--wd", str(full), "--tf", "{}", "--", "touch ran",
                  ":::", "big.dat")
        assert r.returncode == 1
        assert "failed: job 1 on n1 (send: big.dat: cat: write error: No space left on device)" in r.stderr
        assert not (full / "big.dat").exists() and not (full / "ran").exists()  # no partial left, no job run
    finally:
        subprocess.run(["umount", str(full)])


@pytest.mark.timeout(90)
def test_a_node_lost_mid_transfer_moves_the_job(clstr, tmp_path, testbed):
    node = Relay(testbed, "127.0.0.81").up()
    make(tmp_path / "big.dat", 200 << 20)
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    remote = tmp_path / "remote"
    # the first slot to run it is the relay's; its send is cut off halfway by the node going down
    p = clstr.popen("-n", node.name, "-n", "n1", "--reprobe", "0", "--wd", str(remote), "--trc", "{}.back",
                    "--json", "out.json", "--", "cp {} {}.back", ":::", "big.dat",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (remote / "big.dat").exists() and (remote / "big.dat").stat().st_size > (1 << 20)
                        or p.poll() is not None, 30)
        node.down()
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
        node.down()
    assert p.returncode == 0, err
    assert digest(tmp_path / "big.dat.back") == digest(tmp_path / "big.dat")
    result = json.loads((tmp_path / "out.json").read_text())
    attempts = result["jobs"][0]["attempts"]
    assert [a["node"] for a in attempts][-1] == "n1" and attempts[-1]["outcome"] == "succeeded"


@pytest.mark.timeout(90)
def test_ctrl_c_during_a_transfer_leaves_no_partial_here_and_nothing_on_the_node(clstr, tmp_path, testbed):
    make(tmp_path / "big.dat", 300 << 20)
    remote = tmp_path / "remote"
    p = clstr.popen("-n", "n1", "--wd", str(remote), "--trc", "{}.back", "--", "cp {} {}.back", ":::", "big.dat",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the node writes a send to a temporary name beside its place (renamed in once whole)
        assert wait_for(lambda: sending(remote) > (1 << 20), 30)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert not (tmp_path / "big.dat.back").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".clstr")]
    assert wait_for(lambda: not list(remote.rglob("big.dat*")), 10)  # --trc cleans up even now
    assert not run_marker(testbed)


def sending(remote):
    """The bytes of a file the node is receiving now under ``remote`` (files.sh's .part), or 0."""
    for p in remote.glob(".clstr-*.part"):
        try:
            return p.stat().st_size
        except OSError:
            pass
    return 0


@pytest.mark.timeout(90)
def test_of_a_straggler_and_its_rerun_only_the_result_writes_its_file(clstr, tmp_path, testbed):
    n2 = testbed.addr["n2"]
    remote = tmp_path / "remote"
    jobs = [str(i) for i in range(5)]
    # job 0 takes a minute on n2 and writes "slow" there; elsewhere it is quick and writes "quick"
    cmd = (f'case "$SSH_CONNECTION" in *" {n2} "*) echo slow > r{{}}.out; sleep 60;; '
           f'*) sleep 0.3; echo quick > r{{}}.out;; esac')
    r = clstr("-n", "n2", "-n", "n1", "--timeout", "300%", "--wd", str(remote), "--return", "r{}.out", "--json",
              "out.json", "--", cmd, ":::", *jobs, timeout=80)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r0.out").read_text() == "quick\n"
    result = json.loads((tmp_path / "out.json").read_text())
    first = result["jobs"][0]["attempts"]
    assert [(a["node"], a["reason"]) for a in first] == [("n2", "straggler"), ("n1", "")]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".clstr")]


def test_files_keep_their_permission_bits_both_ways_less_the_umask(clstr, tmp_path):
    remote = tmp_path / "remote"
    for name, mode in (("run.sh", 0o750), ("data.txt", 0o666)):
        (tmp_path / name).write_text("x\n")
        os.chmod(tmp_path / name, mode)
    mask = os.umask(0o022)  # clstr's, here; the testbed's sshds (started before) keep theirs
    try:
        r = clstr("-n", "n1", "--wd", str(remote), "--tf", "run.sh", "--tf", "data.txt", "--return", "made.bin",
                  "-j", "touch made.bin; chmod 767 made.bin; stat -c '%a %n' run.sh data.txt; umask")
    finally:
        os.umask(mask)
    assert r.returncode == 0, r.stderr
    *modes, node_mask = r.stdout.splitlines()
    node_mask = int(node_mask, 8)
    assert modes == [f"{0o750 & ~node_mask:o} run.sh", f"{0o666 & ~node_mask:o} data.txt"]
    if node_mask:
        assert modes[1] != "666"  # the node's umask took its part
    assert os.stat(tmp_path / "made.bin").st_mode & 0o777 == 0o745  # 767 less the umask here


@pytest.mark.parametrize("answer,size,mode", [
    ("12 -rwxr-x---", 12, 0o750), ("0 -rw-r--r--.", 0, 0o644), ("5 -rwsr-xr-T", 5, 0o754),
    ("7 -rw-r--r--+", 7, 0o644), ("7", 7, 0o644), ("7 drwx------", 7, 0o644),
])
def test_the_mode_of_a_file_coming_back_is_read_from_ls(answer, size, mode):
    from clstr.transfer import answer_of_fetch
    assert answer_of_fetch(answer) == (size, mode)


@pytest.mark.parametrize("answer", ["", "x 12", "-1 -rw-r--r--", "12abc"])
def test_an_answer_that_is_no_size_is_the_sessions_loss(answer):
    from clstr.transfer import TransferError, answer_of_fetch
    with pytest.raises(TransferError) as e:
        answer_of_fetch(answer)
    assert e.value.lost


@pytest.mark.parametrize("dd", ["gnu", "none"], ids=["GNU dd reads", "head -c reads"])
def test_the_file_session_moves_bytes_exactly_with_either_reader(tmp_path, dd):
    """files.sh run here under sh (no ssh): a file sent and one brought back, byte for byte, and the
    stream in step after each, whether the node's dd reads the bytes (GNU: in blocks of 1 MiB) or,
    where it cannot (a dd without iflag=count_bytes, as BusyBox's), head -c."""
    from clstr import ssh, transfer
    env = dict(os.environ)
    if dd == "none":
        fake = tmp_path / "bin"
        fake.mkdir()
        (fake / "dd").write_text("#!/bin/sh\nexit 1\n")
        (fake / "dd").chmod(0o755)
        env["PATH"] = f"{fake}:{env['PATH']}"
    token = "t" * 16
    argv = ["sh", "-c", ssh.remote_program("files.sh"), "clstr", token, "s1"]
    sizes = [0, 1, 65535, 65537, (3 << 20) + 7]
    for i, size in enumerate(sizes):
        make(tmp_path / f"in{i}", size, i)
    session = transfer.FileSession(argv, env, token, 30)
    try:
        for i, size in enumerate(sizes):
            assert session.send(str(tmp_path / f"in{i}"), str(tmp_path / "there" / f"in{i}")) == size
            got = session.fetch(str(tmp_path / "there" / f"in{i}"), str(tmp_path / f"back{i}"), "local")
            assert got is not None and got[1] == size
            assert digest(got[0]) == digest(tmp_path / f"in{i}") == digest(tmp_path / "there" / f"in{i}")
    finally:
        session.close()


# ---- {host} in the names of files (issue 34 item 3) -------------------------------------------

def test_host_names_each_nodes_files_to_send_and_bring_back(clstr, tmp_path):
    (tmp_path / "in.n1").write_text("one\n")
    (tmp_path / "in.n2").write_text("two\n")
    remote = tmp_path / "remote"
    r = clstr("-n", "n1", "n2", "--wd", str(remote), "--tf", "in.{host}", "--return", "out.{host}",
              "-E", "cat in.{host} > out.{host}")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.n1").read_text() == "one\n" and (tmp_path / "out.n2").read_text() == "two\n"


def test_a_second_job_bringing_a_file_back_to_one_place_is_refused_not_written_over(clstr, tmp_path):
    remote = tmp_path / "remote"
    r = clstr("-n", "n1", "--wd", str(remote), "--job-failures", "job", "--return", "out.{host}", "--",
              "echo {} > out.{host}", ":::", "a", "b")
    assert r.returncode == 1
    assert (tmp_path / "out.n1").read_text() == "a\n"  # the first job's, kept
    assert ("failed: job 2 on n1 (return: out.n1: job 1 brought a file back to this place in this run: not "
            "written over (put {} or {#} in --return))") in r.stderr
    assert "retired" not in r.stderr  # not its node's fault


def test_each_nodes_output_in_a_directory_of_its_own(clstr, tmp_path):
    r = clstr("-n", "n1", "n2", "--output-dir", "out/{host}", "-E", "echo on {host}; echo err >&2")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "n1" / "1.out").read_text() == "on n1\n"
    assert (tmp_path / "out" / "n2" / "2.out").read_text() == "on n2\n"
    assert (tmp_path / "out" / "n2" / "2.err").read_text() == "err\n"
