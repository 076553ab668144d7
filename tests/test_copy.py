"""--copy and --rcopy (issue 34): clush -c/--rcopy, pdcp/rpdcp. Each node here is a directory of its
own (a command transport that runs the session in nodes/NODE), so that every node's bytes can be
checked apart; the file session is the one every transport uses."""
import os
import stat
import subprocess
import sys

import pytest

RUNTIME = ["--connect", 'sh -c \'mkdir -p "nodes/$0" && cd "nodes/$0" && env CLSTR_HOST="$0" "$@"\' {host}']


def clstr(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "clstr", *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=90)


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    (src / "sub" / "deeper" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "sub" / "deeper" / "run.sh", 0o755)
    (tmp_path / "one.conf").write_text("key=value\n")
    return src


def same(a, b):
    return a.read_bytes() == b.read_bytes() and stat.S_IMODE(a.stat().st_mode) == stat.S_IMODE(b.stat().st_mode)


def test_copy_sends_files_and_trees_to_every_node(tmp_path, tree):
    r = clstr(tmp_path, "-n", "c[1-3]", *RUNTIME, "--copy", "one.conf", "src", "--dest", "etc")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    for node in ("c1", "c2", "c3"):
        there = tmp_path / "nodes" / node / "etc"
        assert same(tmp_path / "one.conf", there / "one.conf")
        for f in ("a.txt", "sub/b.bin", "sub/deeper/run.sh"):
            assert same(tree / f, there / "src" / f), (node, f)


def test_a_trailing_slash_copies_a_directorys_contents(tmp_path, tree):
    r = clstr(tmp_path, "-w", "c1", *RUNTIME, "-c", "src/", "--dest", "opt")
    assert r.returncode == 0, r.stderr
    assert same(tree / "sub" / "b.bin", tmp_path / "nodes" / "c1" / "opt" / "sub" / "b.bin")
    assert not (tmp_path / "nodes" / "c1" / "opt" / "src").exists()


def test_rcopy_brings_each_nodes_file_back_as_name_dot_node_and_says_where_it_was_missing(tmp_path):
    for node in ("c1", "c2"):
        (tmp_path / "nodes" / node / "log").mkdir(parents=True)
        (tmp_path / "nodes" / node / "log" / "app.log").write_text(f"log of {node}\n")
    (tmp_path / "back").mkdir()
    r = clstr(tmp_path, "-n", "c[1-3]", *RUNTIME, "--rcopy", "log/app.log", "--dest", "back")
    assert r.returncode == 1
    assert sorted(os.listdir(tmp_path / "back")) == ["app.log.c1", "app.log.c2"]
    assert (tmp_path / "back" / "app.log.c2").read_text() == "log of c2\n"
    lines = r.stderr.splitlines()
    assert lines[-2:] == ["clstr: failed on c3", "clstr: 3 jobs: 2 succeeded, 1 failed, 0 not run."], r.stderr
    assert "retired" not in r.stderr  # a missing file is that copy's failure, not the node's


@pytest.mark.parametrize("argv,message", [
    (["--copy", "nothere", "-n", "a"], "clstr: --copy nothere: no such file or directory here"),
    (["--copy", "one.conf", "-j", "true", "-n", "a"], "clstr: --copy and --rcopy copy, on every node: give no jobs "
                                                      "and no -E with them"),
    (["--dest", "x", "-j", "true", "-n", "a"], "clstr: --dest goes with --copy or --rcopy"),
    (["--preserve", "-j", "true", "-n", "a"], "clstr: --preserve goes with --copy or --rcopy"),
])
def test_bad_copies_are_one_line(tmp_path, tree, argv, message):
    r = clstr(tmp_path, *argv)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", message + "\n")


def test_copy_and_rcopy_through_a_gateway(clstr, testbed, tmp_path):
    """Over ssh through a gateway (the testbed's nodes share this machine's disk: each node writes the
    same place, each whole, by temporary name and rename)."""
    (tmp_path / "payload.bin").write_bytes(os.urandom(200_000))
    r = clstr("--gateway", "n1=n[2-3]", "-n", "n[2-3]", "-c", "payload.bin", "--dest", str(tmp_path / "there"))
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert (tmp_path / "there" / "payload.bin").read_bytes() == (tmp_path / "payload.bin").read_bytes()
    r = clstr("--gateway", "n1=n[2-3]", "-n", "n[2-3]", "--rcopy", str(tmp_path / "there" / "payload.bin"),
              "--dest", str(tmp_path / "back"))
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "back")) == ["payload.bin.n2", "payload.bin.n3"]
    assert (tmp_path / "back" / "payload.bin.n3").read_bytes() == (tmp_path / "payload.bin").read_bytes()


@pytest.fixture
def shared(testbed):
    """A directory every testbed login user may write in (the nodes share this machine's disk), and
    the users: tests/sudonodes.py makes them (one of them has no rsync on its PATH)."""
    import shutil
    import tempfile
    import sudonodes
    why = sudonodes.ensure(testbed.client_key + ".pub")
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    d = tempfile.mkdtemp(prefix="clstr-copy-")
    os.chmod(d, 0o1777)
    yield d, sudonodes.USERS
    shutil.rmtree(d, ignore_errors=True)


def test_copy_goes_by_rsync_and_by_the_file_session_where_a_node_has_no_rsync(clstr, shared):
    d, users = shared
    src = os.path.join(d, "payload.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(300_000))
    os.chmod(src, 0o644)
    yes, no = f"{users['np']}@n1", f"{users['nr']}@n2"
    os.makedirs(os.path.join(d, "there", "deep"))
    os.chmod(os.path.join(d, "there", "deep"), 0o777)  # both users place the file there, in turn
    r = clstr("-v", "-n", yes, no, "-c", src, "--dest", os.path.join(d, "there", "deep"))
    assert r.returncode == 0, r.stderr
    assert f"{no}: no rsync on the node: the files go by clstr's file session" in r.stderr
    assert f"{yes}: no rsync" not in r.stderr
    with open(os.path.join(d, "there", "deep", "payload.bin"), "rb") as f, open(src, "rb") as g:
        assert f.read() == g.read()
    r = clstr("-v", "-n", yes, no, "--rcopy", src, "--dest", os.path.join(d, "back"))
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(os.path.join(d, "back"))) == [f"payload.bin.{yes}", f"payload.bin.{no}"]
    for name in os.listdir(os.path.join(d, "back")):
        with open(os.path.join(d, "back", name), "rb") as f, open(src, "rb") as g:
            assert f.read() == g.read()
    # a node lacking the file: the same one line whichever way it went
    r = clstr("-n", yes, no, "--rcopy", os.path.join(d, "nothere"), "--dest", os.path.join(d, "back2"))
    assert r.returncode == 1
    for node in (yes, no):
        assert f"return: {os.path.join(d, 'nothere')}: no such file on {node}" in r.stderr


def test_without_rsync_here_the_file_session_copies(clstr, testbed, tmp_path):
    import shutil
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ssh", "sh"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (tmp_path / "payload.bin").write_bytes(os.urandom(100_000))
    r = clstr("-n", "n[1-2]", "-c", "payload.bin", "--dest", str(tmp_path / "there"), env={"PATH": str(bin_dir)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "there" / "payload.bin").read_bytes() == (tmp_path / "payload.bin").read_bytes()


def test_rsync_makes_the_destination_and_keeps_a_trailing_slash_as_clush_does(clstr, testbed, tmp_path, tree):
    r = clstr("-v", "-n", "n1", "-c", str(tree) + "/", str(tmp_path / "one.conf"), "--dest",
              str(tmp_path / "a" / "b" / "c"))
    assert r.returncode == 0 and "no rsync" not in r.stderr, r.stderr
    got = sorted(str(p.relative_to(tmp_path / "a" / "b" / "c")) for p in (tmp_path / "a" / "b" / "c").rglob("*"))
    assert got == ["a.txt", "one.conf", "sub", "sub/b.bin", "sub/deeper", "sub/deeper/run.sh"]
    assert os.stat(tmp_path / "a" / "b" / "c" / "sub" / "deeper" / "run.sh").st_mode & 0o111


def test_rcopy_brings_a_directory_back_whole_and_merges_it_next_time(clstr, testbed, tmp_path):
    # over ssh, by rsync (issue 34 item 3): DEST/NAME.NODE, empty directories and all
    src = tmp_path / "logs"
    (src / "empty").mkdir(parents=True)
    (src / "app").mkdir()
    (src / "app" / "a.log").write_text("a\n")
    r = clstr("-n", "n1", "n2", "--rcopy", str(src) + "/", "--dest", str(tmp_path / "back"))
    assert r.returncode == 0, r.stderr
    for node in ("n1", "n2"):
        got = tmp_path / "back" / f"logs.{node}"
        assert (got / "app" / "a.log").read_text() == "a\n" and (got / "empty").is_dir()
    (src / "app" / "b.log").write_text("b\n")
    (tmp_path / "back" / "logs.n1" / "mine.txt").write_text("kept\n")
    r = clstr("-n", "n1", "--rcopy", str(src), "--dest", str(tmp_path / "back"))
    assert r.returncode == 0, r.stderr
    got = tmp_path / "back" / "logs.n1"
    assert (got / "app" / "b.log").read_text() == "b\n" and (got / "mine.txt").read_text() == "kept\n"
    assert not [n for n in os.listdir(tmp_path / "back") if n.startswith(".clstr")]  # no temporary left


def test_a_directory_where_no_rsync_can_bring_it_is_one_line(tmp_path):
    (tmp_path / "nodes" / "c1" / "logs").mkdir(parents=True)
    r = clstr(tmp_path, "-n", "c1", *RUNTIME, "--rcopy", "logs", "--dest", "back")
    assert r.returncode == 1
    assert "return: logs: a directory (--rcopy brings one back by rsync, where both ends have it)" in r.stderr


OLD = 1577934245  # 2020-01-02 03:04:05 UTC


@pytest.mark.parametrize("over", ["file session", "rsync"])
def test_preserve_keeps_times_and_modes_both_ways(tmp_path, testbed, over):
    # clush -p, pdcp -p (issue 34 item 3): without it, the node's umask and the time of the copy
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x\n")
    os.chmod(src / "f", 0o666)  # a umask of 022 would take the group's and others' write away
    os.utime(src / "f", (OLD, OLD))
    if over == "rsync":
        via, there = ["--ssh", testbed.ssh, "-n", "n1"], tmp_path
        dest = [str(tmp_path / "d")]
    else:
        via, there = ["-n", "c1", *RUNTIME], tmp_path / "nodes" / "c1"
        dest = ["d"]
    for keep, name in ((["--preserve"], "d"), ([], "plain")):
        r = clstr(tmp_path, *via, "--copy", str(src / "f") if over == "rsync" else "src/f",
                  "--dest", (dest[0] if keep else dest[0].replace("/d", "/plain") if over == "rsync" else "plain"),
                  *keep)
        assert r.returncode == 0, r.stderr
        got = there / name / "f"
        st = got.stat()
        if keep:
            assert (stat.S_IMODE(st.st_mode), int(st.st_mtime)) == (0o666, OLD)
        else:
            assert stat.S_IMODE(st.st_mode) != 0o666 and int(st.st_mtime) != OLD
    # and back
    back = tmp_path / "back"
    path = str(there / "d" / "f") if over == "rsync" else "d/f"
    r = clstr(tmp_path, *via, "--rcopy", path, "--dest", str(back), "--preserve")
    assert r.returncode == 0, r.stderr
    got = back / ("f.n1" if over == "rsync" else "f.c1")
    assert (stat.S_IMODE(got.stat().st_mode), int(got.stat().st_mtime)) == (0o666, OLD)
