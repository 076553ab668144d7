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
    (["--rcopy", "logs/", "-n", "a"], "clstr: --rcopy logs/: a directory cannot be brought back yet: name its files"),
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
