"""Inputs and replacement strings (clstr/templates.py) against GNU parallel's own --dry-run.

Every command both make is run through bash and what it prints compared: the same words, however
each tool quotes them (parallel writes 'it'"'"'s where clstr writes 'it'\\''s)."""
import shutil
import subprocess
import sys

import pytest

from clstr import templates
from clstr.errors import InputError

ODD = ["a b.txt", "dir/x.tar.gz", "it's", "$HOME", "a;b", "-x", "\u00fc\u00f1\u00ee.c\u00f6d\u00e9", "", ".hidden",
       "d/.e", "x.", "/abs/p.c", "trail/", "a\\b", "q\"uote", "*", "{}", "x y/z w.e f"]


def parallel_commands(template, args):
    r = subprocess.run(["parallel", "--will-cite", "--dry-run", "-j1", template, *args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def clstr_commands(clstr, template, args):
    r = clstr("-n", "n1", "-v", "--dry-run", "--", template, *args, ssh=False)
    assert r.returncode == 0, r.stderr
    return [line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("  job ")]


def run(commands):
    return [subprocess.run(["bash", "-c", c], capture_output=True, text=True, timeout=10).stdout for c in commands]


@pytest.mark.skipif(shutil.which("parallel") is None, reason="GNU parallel is not installed (tests/run installs it)")
@pytest.mark.parametrize("template,args", [
    ("printf '[%s]' {} {.} {/} {//} {/.} {#}", [":::"] + ODD),
    ("printf '[%s]' {1} {2} {} {1.} {2/} {1//} {2/.} {-1}", [":::", "a.b", "c/d e.f", ":::", "1", "x/y.z"]),
    ("printf '[%s]' {}", [":::", "a", "b", ":::+", "1", "2", "3", ":::", "x", "y"]),
    ("printf '[%s]'", [":::", "no", "replacement"]),  # the inputs go at the end
    ("printf '[%s]' {2} {1} {3}", [":::", "a", ":::", "b"]),  # a source that is not there: empty
])
def test_replacement_strings_are_gnu_parallels(clstr, template, args):
    ours = clstr_commands(clstr, template, args)
    theirs = parallel_commands(template, args)
    assert len(ours) == len(theirs) and run(ours) == run(theirs)


@pytest.mark.skipif(shutil.which("parallel") is None, reason="GNU parallel is not installed (tests/run installs it)")
def test_argument_files_and_pairing_are_gnu_parallels(clstr, tmp_path):
    (tmp_path / "a").write_text("l1\nl 2\n\nl;4\n")
    (tmp_path / "b").write_text("x\ny\nz\n")
    for args in ([":::: ", "a"], ["::::", "a", ":::", "k"], ["::::", "a", "::::+", "b"], ["::::", "a", "b"]):
        args = [a.strip() for a in args]
        ours = clstr_commands(clstr, "printf '[%s]' {}", [str(tmp_path / a) if a in "ab" else a for a in args])
        theirs = parallel_commands("printf '[%s]' {}", [str(tmp_path / a) if a in "ab" else a for a in args])
        assert run(ours) == run(theirs), args


def test_each_value_is_one_argument_on_the_node(clstr):
    r = clstr("-n", "n1", "--", "printf '[%s]\\n'", ":::", "a b;rm x", "-n", "it's", "$HOME")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == sorted(["[a b;rm x]", "[-n]", "[it's]", "[$HOME]"])


def test_the_slot_of_a_job_is_known_when_it_starts(clstr):
    r = clstr("-n", "2/n1", "--tag-job", "--json", "out.json", "--", "echo {%} {}", ":::", "a", "b", "c", "d")
    assert r.returncode == 0, r.stderr
    import json
    result = json.loads((clstr.cwd / "out.json").read_text())
    for j in result["jobs"]:
        assert j["command"] == f"echo {{%}} {'abcd'[j['seq'] - 1]}"  # as written
    slots = {int(line.split()[1]) for line in r.stdout.splitlines()}
    assert slots <= {1, 2} and slots


@pytest.mark.parametrize("args,message", [
    (["-n", "n1", "-j", "echo", "--", "echo", ":::", "a"], "give jobs either as COMMAND ::: ARGUMENTS or with -j/-J/-E"),
    (["-n", "n1", "--", "echo", "::::", "missing.txt"], "missing.txt: argument file not found"),
    (["-n", "n1", "echo", "{}", ":::", "a"], "no command before ::: (a command after -n, -N or -J is taken for their "
                                              "values: give it before them, or after --)"),
    (["-n", "n1", "--", "echo", ":::+", "a"], ":::+ pairs a source with the one before it"),
    (["-n", "n1", "--", "echo", ":::", "a\nb"], "holds a line break: refused"),
    (["-n", "n1", "--", ":::", "a"], "no command before :::"),
    (["-E", "echo", "-n", "n1", "--", "echo", ":::", "a"], "give jobs either as COMMAND ::: ARGUMENTS"),
    (["-n", "n1", "--", "echo {= s/a/b/ =}", ":::", "a"], "'{= s/a/b/ =}': GNU parallel's Perl replacement strings "
                                                           "are not clstr's"),
])
def test_bad_inputs_are_one_line_and_exit_2(clstr, args, message):
    r = clstr("--dry-run", *args, ssh=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


@pytest.mark.parametrize("value,expected", [("a.b/c", "a.b/c"), ("x.", "x"), (".hidden", ""), ("d/.e", "d/"),
                                            ("f.tar.gz", "f.tar")])
def test_no_extension_as_gnu_parallel(value, expected):
    assert templates.no_extension(value) == expected


@pytest.mark.parametrize("value,expected", [("a", "."), ("a/b", "a"), ("/a", "/"), ("a/", "."), ("a/b/", "a"),
                                            ("//a", "/"), ("a//b", "a")])
def test_dirname_as_perls(value, expected):
    assert templates.dirname(value) == expected


def test_too_many_combinations_are_refused_before_any_is_made():
    srcs = [templates.Source([str(i) for i in range(1000)]) for _ in range(3)]
    with pytest.raises(InputError, match="the inputs make 1000000000 jobs, more than 1000000"):
        templates.jobs("echo {}", srcs, 1_000_000)
    assert sys.getrecursionlimit()  # nothing was built


@pytest.mark.parametrize("node,name", [("n1", "n1"), (":", ":"), ("user@h:22", "user@h:22"), ("..", "_.."),
                                       (".", "_."), ("a/b", "a_b"), ("../x", ".._x")])
def test_a_nodes_name_in_a_file_name_never_leads_out_of_its_directory(node, name):
    from clstr.templates import HOST_MARK, as_file_name, on_node
    assert as_file_name(node) == name
    assert on_node(f"out/{HOST_MARK}.txt", node) == f"out/{name}.txt"
