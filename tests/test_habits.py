"""What a newcomer from GNU parallel, pdsh or clush types, and what clstr says to it (issue 36):
-j N, ':::' inside quotes, options after ':::', mistyped options, --slots, and the one line that
explains the seed's "a non-zero exit presumes the node broken" the first time it happens."""
import subprocess
import sys

import pytest

# a command that gives each node a shell here, with no ssh (transports.Command)
VIA = ["--connect", "env CLSTR_HOST={host}"]


def clstr(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "clstr", *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=90)


@pytest.mark.parametrize("argv,message", [
    (["-j", "2", "-n", "a", "b"], "clstr: -j 2: -j gives clstr a job (a shell command); for 2 slots on every node "
                                  "(GNU parallel's -j), give --slots 2"),
    (["-n", "node001", "echo {} ::: a b"], "clstr: 'echo {} ::: a b' was given to -n: ':::' must be a word of its "
                                           "own, outside the quotes, after the command: clstr -n NODE -- 'echo {}' "
                                           "::: a b"),
    (["echo {}", ":::", "a", "b", "-n", "node001"], "clstr: -n came after ::: and was taken as one of its values: "
                                                    "give the options before the command: clstr -n NODE 'echo {}' "
                                                    "::: a b"),
    (["--timout", "5", "-j", "x", "-n", "a"], "clstr: unrecognized arguments: --timout; did you mean --timeout? "
                                              "(see clstr --help)"),
    (["--retry", "2", "-j", "x", "-n", "a"], "clstr: unrecognized arguments: --retry; did you mean --retries? "
                                             "(see clstr --help)"),
    (["--slots", "0", "-j", "x", "-n", "a"], "clstr: --slots must be a whole number from 1 to 1000000, got 0"),
])
def test_a_habit_gets_one_line_that_says_what_was_meant(tmp_path, argv, message):
    r = clstr(tmp_path, *argv)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", message + "\n")


def test_slots_gives_every_node_that_many(tmp_path):
    (tmp_path / "nodes.txt").write_text("a\nb\n")
    r = clstr(tmp_path, "--slots", "3", "-N", "nodes.txt", "-n", "4/c", "--dry-run", "-j", "x")
    assert r.stdout.splitlines()[0] == "nodes: 3 (a,b,c), slots: 9", r.stderr
    r = clstr(tmp_path, "--slots", "2", "-n", "2/:", *VIA, "-n", "d", "--", "echo {} $CLSTR_HOST", ":::", *"abcdefgh")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 8, r.stderr


def test_the_first_node_a_jobs_exit_retires_says_why_once(tmp_path):
    r = clstr(tmp_path, "-n", "c1", "c2", "c3", *VIA, "--reprobe", "0", "-j", "exit 3", "-j", "exit 4")
    hint = ("clstr: (a job's non-zero exit presumes its node broken, as in the original clstr: the job moves to "
            "another node; --job-failures job makes it the job's own failure)")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines.count(hint) == 1 and lines.index(hint) == 1 and "retired: job" in lines[0], r.stderr
    assert r.stderr.count("retired:") >= 3  # every node, said each time; the reason once
    r = clstr(tmp_path, "-n", "c1", "c2", *VIA, "--job-failures", "job", "-j", "exit 3")
    assert "presumes" not in r.stderr and "retired" not in r.stderr


def test_jobs_not_run_for_one_reason_are_one_line_and_the_counts_come_last(tmp_path):
    jobs = [a for i in range(12) for a in ("-j", f"sleep 0.2; echo {i}")]
    r = clstr(tmp_path, "-n", ":", "--job-failures", "job", "--halt", "soon,fail=1", "--joblog", "log",
              "-j", "exit 1", *jobs)
    lines = r.stderr.splitlines()
    assert r.returncode == 1
    assert "clstr: 12 jobs not run (halted: 1 job failed): jobs 2-13" in lines
    assert not [line for line in lines if line.startswith("clstr: not run: job")]
    assert lines[-2:] == ["clstr: the job log log has a row of each job that ended: --joblog log --resume runs the "
                          "jobs not run, --resume-failed the failed ones too",
                          "clstr: 13 jobs: 0 succeeded, 1 failed, 12 not run."]
    assert not [line for line in lines if line.startswith("clstr: slowest:")]  # "(0.0 s)" says nothing
    r = clstr(tmp_path, "-n", ":", "--job-failures", "job", "--halt", "soon,fail=1", "-j", "exit 1", "-j", "echo b",
              "-j", "echo c")
    assert r.stderr.splitlines()[-4:-2] == [  # three or fewer: one a line, each with its command
        "clstr: not run: job 2 (halted: 1 job failed): echo b", "clstr: not run: job 3 (halted: 1 job failed): echo c"]


GENDERS = """# a site's genders file
node[1-4]  compute,rack=a
node5,node6 compute,rack=b,gpu
login1 login,role=%n-gw   # a comment after
node1 mgmt
"""


@pytest.mark.parametrize("query", ["compute", "rack=a", "gpu", "login", "mgmt", "rack=b", "compute,login",
                                   "role=login1-gw"])
def test_genders_queries_select_what_nodeattr_selects(tmp_path, query):
    import shutil
    from clstr.genders import Genders
    (tmp_path / "genders").write_text(GENDERS)
    ours = Genders(GENDERS, "genders").nodes(query)
    if shutil.which("nodeattr") is None:
        pytest.skip("nodeattr (genders) is not installed") if not __import__("os").environ.get("CI") else None
    oracle_query = "||".join(query.split(","))
    r = subprocess.run(["nodeattr", "-f", str(tmp_path / "genders"), "-n", oracle_query], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert sorted(ours) == sorted(r.stdout.split())


@pytest.mark.parametrize("text,message", [
    ("node1 a b\n", "clstr: genders:1: expected 'NODES ATTR,ATTR=VALUE', got 'node1 a b'"),
    ("node1 a,=b\n", "clstr: genders:1: bad attribute '=b'"),
    ("node[1-\n", "clstr: genders:1: "),
])
def test_a_broken_genders_file_is_one_line_naming_it(tmp_path, text, message):
    (tmp_path / "genders").write_text(text)
    r = clstr(tmp_path, "-g", "a", "--genders-file", "genders", "-j", "true")
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith(message) and r.stderr.count("\n") == 1


def test_pdsh_and_clush_spellings_run_as_they_would_there(tmp_path):
    (tmp_path / "genders").write_text(GENDERS)
    r = clstr(tmp_path, "-g", "rack=a", "--genders-file", "genders", *VIA, "-b", "-E", "echo same")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "---------------\nnode[1-4] (4)\n---------------\nsame\n"
    r = clstr(tmp_path, "-w", "c[1-3]", *VIA, "--tag", "-E", "echo $CLSTR_HOST is {host}")
    assert sorted(r.stdout.splitlines()) == [f"c{i}: c{i} is c{i}" for i in (1, 2, 3)], r.stderr
    r = clstr(tmp_path, "-g", "nosuch", "--genders-file", "genders", "-j", "true")
    assert (r.returncode, r.stderr) == (2, "clstr: -g nosuch: no node of genders has it\n")


def test_host_is_the_nodes_name_in_jobs_and_the_job_log_keeps_it_as_written(tmp_path):
    r = clstr(tmp_path, "-n", "c1", "c2", *VIA, "--joblog", "log", "--", "echo {} on {host} $CLSTR_HOST", ":::",
              "a", "b", "c", "d")
    assert r.returncode == 0, r.stderr
    got = [line.split() for line in r.stdout.splitlines()]
    assert len(got) == 4 and all(w[2] == w[3] for w in got)
    rows = (tmp_path / "log").read_text().splitlines()[1:]
    assert sorted(row.split("\t")[-1] for row in rows) == [f"echo {x} on {{host}} $CLSTR_HOST" for x in "abcd"]
    # in a file's name too (issue 34 item 3): the node's name, once the job starts there
    r = clstr(tmp_path, "-n", "c1", *VIA, "--return", "{host}.out", "--", "echo {} > {host}.out", ":::", "a")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c1.out").read_text() == "a\n"
    r = clstr(tmp_path, "-n", "c1", *VIA, "--return", "{%}.out", "--", "true", ":::", "a")
    assert r.returncode == 2 and "{%} (known once the job starts) cannot name a file" in r.stderr


def test_the_summary_cuts_a_long_command_and_the_job_log_keeps_it_whole(tmp_path):
    long = "exit 3; " + "echo " + "x" * 200
    r = clstr(tmp_path, "-n", ":", "--job-failures", "job", "--joblog", "log", "-j", long)
    line = next(line for line in r.stderr.splitlines() if line.startswith("clstr: failed: job 1"))
    assert line == "clstr: failed: job 1 on : (exit 3): " + long[:69] + "..."
    assert (tmp_path / "log").read_text().splitlines()[1].split("\t")[-1] == long
