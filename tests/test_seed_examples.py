"""Every example of the original clstr's README, run for real against the loopback sshd testbed."""
import os
import shlex
import subprocess

from conftest import lines, read_until, release


def test_two_nodes_three_jobs(clstr):
    r = clstr("--node", "n1", "--node", "n2", "--job", "echo hello", "--job", "echo world",
              "--job", "echo from $(hostname)")
    assert r.returncode == 0, r.stderr
    host = os.uname().nodename
    assert lines(r.stdout) == sorted(["hello", "world", f"from {host}"])


def test_cd_and_write_files(clstr, tmp_path):
    work = tmp_path / "results"
    jobs = [f"mkdir -p {shlex.quote(str(work))} && cd {shlex.quote(str(work))} && echo job {i} > out{i}.txt"
            for i in range(1, 6)]
    args = []
    for j in jobs:
        args += ["-j", j]
    r = clstr("-n", "n1", "-n", "n2", "-n", "n3", *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert sorted(os.listdir(work)) == [f"out{i}.txt" for i in range(1, 6)]
    assert (work / "out3.txt").read_text() == "job 3\n"


def test_node_file_and_job_file(clstr, tmp_path):
    (tmp_path / "nodes.txt").write_text("# lab machines\nn1\n\nn2  # the second one\nn3\n")
    (tmp_path / "jobs.txt").write_text("echo a\n\necho b\necho c\necho d\n")
    r = clstr("--node-file", "nodes.txt", "--job-file", "jobs.txt")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == ["a", "b", "c", "d"]


def test_positional_job_file_and_stdin(clstr, tmp_path):
    (tmp_path / "jobs.txt").write_text("echo one\necho two\n")
    r = clstr("jobs.txt", "-n", "n1")
    assert (r.returncode, lines(r.stdout)) == (0, ["one", "two"]), r.stderr
    r = clstr("-n", "n1", "--", "jobs.txt")
    assert (r.returncode, lines(r.stdout)) == (0, ["one", "two"]), r.stderr
    r = clstr("-", "-n", "n1", "n2", input="echo x\necho y\n")
    assert (r.returncode, lines(r.stdout)) == (0, ["x", "y"]), r.stderr
    r = clstr("-n", "n1", "n2", "-", input="echo x\n")
    assert (r.returncode, r.stderr) == (2, "clstr: '-' (jobs from stdin) was given to -n: give it before -n, "
                                           "or after --\n")


def test_process_substitution(clstr, testbed, tmp_path):
    # exactly the original example, through a real bash and its <(...)
    argv = " ".join(shlex.quote(a) for a in clstr.argv("-n", "n1", "-n", "n2", "-n", "n3"))
    script = argv + ' --job-file <(for i in $(seq 10); do echo "echo I am job $i"; done)'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                       env=clstr.env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == sorted(f"I am job {i}" for i in range(1, 11))


def test_on_each_node_cpuinfo(clstr):
    argv = " ".join(shlex.quote(a) for a in clstr.argv("-n", "n[1-4]", "-n", "n1", "--on-each-node",
                                                       'grep "model name" /proc/cpuinfo'))
    r = subprocess.run(["bash", "-c", argv + " | sort | uniq -c"], capture_output=True, text=True,
                       env=clstr.env(), timeout=60)
    assert r.returncode == 0, r.stderr
    with open("/proc/cpuinfo") as f:
        models = [ln.rstrip("\n") for ln in f if ln.startswith("model name")]
    # four distinct nodes (n1 listed twice still runs it once), each the same machine here
    expected = sorted(f"{4 * models.count(m):7d} {m}" for m in set(models))
    assert sorted(r.stdout.splitlines()) == expected


def test_status_line_without_terminal(clstr):
    r = clstr("-n", "n1", "-n", "n2", "--status", "-j", "echo a", "-j", "echo b", "-j", "echo c")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == ["a", "b", "c"]
    assert "\r" not in r.stderr
    # among clstr's other lines, named as they are; the last line once, not twice
    final = "clstr: 3 of 3 jobs complete, 0 of 2 nodes running jobs."
    assert r.stderr.splitlines().count(final) == 1, r.stderr
    assert all(ln.startswith("clstr: ") for ln in r.stderr.splitlines())


def test_active_nodes_file(clstr, tmp_path):
    active = tmp_path / "running_jobs"
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    # the job blocks on a fifo until the test has read the active-nodes file
    job = f"echo running; cat {shlex.quote(str(gate))} > /dev/null; echo released"
    p = clstr.popen("-n", "n1", "--active-nodes", str(active), "-j", job,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the file is written when the job is handed out, before it can print
        read_until(p.stdout, ["running"])
        assert active.read_text() == f"n1: <'Job' {job!r}>\n"
        out, err = release(gate, p)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert out == "released\n"
    assert active.read_text() == ""


def test_node_filter_job(clstr):
    # the original filter: run only where nobody is logged in; `users` is empty on the testbed
    r = clstr("-n", "n1", "-n", "n2", "-j", '[ -z "$(users)" ] && echo "running job..."')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "running job...\n"


def test_job_failing_on_one_node_completes_elsewhere(clstr, testbed):
    # the job refuses to run on n1 (its address is 127.0.0.2): n1 is filtered out, n2 runs it
    job = 'case "$SSH_CONNECTION" in *" 127.0.0.2 "*) exit 1;; esac; echo done'
    r = clstr("-n", "n1", "-n", "n2", "-m", "1", "-j", job, "-j", "echo second")
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == ["done", "second"]
    assert "node n1 retired" in r.stderr


def test_refused_and_auth_failing_nodes(clstr):
    jobs = []
    for i in range(12):
        jobs += ["-j", f"echo job {i}"]
    r = clstr("-n", "refused", "-n", "badauth", "-n", "n1", "-n", "n2", *jobs)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == sorted(f"job {i}" for i in range(12))
    assert "node refused retired: refused" in r.stderr
    assert "node badauth retired: authentication" in r.stderr


def test_no_usable_node_left(clstr):
    r = clstr("-n", "refused", "-j", "echo a", "-j", "echo b")
    assert r.returncode == 1
    assert r.stdout == ""
    assert "not run: job 1 (no usable node left (last: node unreachable: refused)): echo a" in r.stderr
    assert "not run: job 2 (no usable node left): echo b" in r.stderr


def test_lines_never_mix(clstr):
    # many jobs print long lines at once: every line arrives whole
    n, width = 24, 3000
    jobs = []
    for i in range(n):
        jobs += ["-j", f"for k in $(seq 40); do printf '%0{width}d\\n' {i}; done"]
    r = clstr("-n", "4/n1", "-n", "4/n2", *jobs)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert len(out) == n * 40
    assert sorted(out) == sorted(str(i).zfill(width) for i in range(n) for _ in range(40))


def test_long_line_and_unterminated_last_line(clstr):
    r = clstr("-n", "n1", "-j", "head -c 3000000 /dev/zero | tr '\\0' a; echo; printf 'x\\nend'")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "a" * 3000000 + "\nx\nend\n"


def test_max_node_uses_retires_slots(clstr):
    r = clstr("-n", "n1", "-u", "2", "-j", "echo a", "-j", "echo b", "-j", "echo c")
    assert r.returncode == 1
    assert lines(r.stdout) == ["a", "b"]
    assert "not run: job 3 (no usable node left): echo c" in r.stderr


def test_job_waiting_for_its_own_background_jobs(clstr):
    # the remote cleanup watcher must not be one of the job's children that `wait` waits for
    job = "sleep 0.1 & wait; echo done"
    for extra in (["-j", job], ["--no-multiplex", "-j", job], ["-E", job]):
        r = clstr("-n", "n1", *extra, timeout=30)
        assert (r.returncode, r.stdout) == (0, "done\n"), (extra, r.stderr)
