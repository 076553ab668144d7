#!/usr/bin/env python3
"""Benchmarks: clstr side by side with GNU parallel, pdsh, clush and pssh on a loopback testbed.

Brings up its own sshd nodes (tests/sshnodes.py), runs each workload with
clstr and with every anchor that is installed, checks every run's output for
completeness, and prints a table of wall time, CPU time and peak memory with
ratios to clstr. Not a test: it asserts nothing, it prints figures.

    python3 bench/bench.py                 # every workload
    python3 bench/bench.py W1 W3           # some of them
    python3 bench/bench.py --jobs 400 W1   # smaller

CPU is that of the tool and the descendants it waited for (ssh included; the
sshd side is not counted). Memory is the peak of the summed unique memory
(USS) of the tool's process tree, ssh included, sampled every 0.5 s.
"""
import argparse
import compileall
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from sshnodes import Testbed  # noqa: E402

PY = sys.executable


class Sampler(threading.Thread):
    """Samples the process tree of a pid: peak summed RSS (and USS of chosen processes)."""

    def __init__(self, pid, uss_filter=None, interval=0.5):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.uss_filter = uss_filter
        self.peak_rss = 0
        self.peak_uss = 0
        self.uss_count = 0
        self.peak_procs = 0
        self.stop = threading.Event()

    def run(self):
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stop.wait(self.interval):
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.Error:
                return
            total = uss = n = 0
            self.peak_procs = max(self.peak_procs, len(procs))
            for p in procs:
                try:
                    mine = p.memory_full_info().uss  # unique pages: shared ones not counted twice
                    chosen = bool(self.uss_filter and self.uss_filter(p))
                except psutil.Error:
                    continue
                total += mine
                if chosen:
                    uss += mine
                    n += 1
            self.peak_rss = max(self.peak_rss, total)
            if uss > self.peak_uss:
                self.peak_uss, self.uss_count = uss, n


def timed(argv, env=None, stdin=None, uss_filter=None, timeout=600):
    """Run argv; returns dict(wall, cpu, rss, uss, uss_count, out, err, code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(p.pid, uss_filter)
    sampler.start()
    try:
        out, err = p.communicate(stdin, timeout=timeout)
        code = p.returncode
    except subprocess.TimeoutExpired:
        for c in psutil.Process(p.pid).children(recursive=True):
            c.kill()
        p.kill()
        out, err = p.communicate()
        code = "timeout"
    wall = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dict(wall=wall, cpu=cpu, rss=sampler.peak_rss, uss=sampler.peak_uss, uss_count=sampler.uss_count,
                procs=sampler.peak_procs, out=out, err=err, code=code)


def clstr_argv(tb, *args):
    return [PY, "-m", "clstr", "--ssh", tb.ssh, *args]


def check(lines_out, expected):
    """'ok' or what is missing or extra."""
    got = sorted(lines_out)
    if got == sorted(expected):
        return "ok"
    missing = len(set(expected) - set(got))
    return f"{missing} missing, {len(got)} lines for {len(expected)}"


def table(title, rows):
    print(f"\n{title}")
    print("| tool | wall s | CPU s | peak USS MB | output | wall vs clstr |")
    print("|---|---|---|---|---|---|")
    base = rows[0][1]["wall"] if rows else None
    for name, r in rows:
        ratio = f"{r['wall'] / base:.2f}x" if base else ""
        print(f"| {name} | {wall_text(r)} | {r['cpu']:.2f} | {r['rss'] / 2**20:.0f} | {r['check']} | {ratio} |")
    sys.stdout.flush()


def have(tool):
    return shutil.which(tool) is not None


FLOOR = 'while IFS= read -r l; do "$SHELL" -c "$l" </dev/null; done'


def floor_argv(tb, shares):
    """The floor of W1: one ssh session a slot running a small loop, each fed its share of the jobs.

    No scheduling at all (the shares are fixed in advance) and no framing: what ssh and the node
    cost when every job is a line down a long-lived session and a fresh shell on the node.
    """
    script = " ".join(f"ssh -F {tb.ssh_config} -T {h} '{FLOOR}' < {f} &" for h, f in shares) + " wait"
    return ["sh", "-c", script]


def node_cpu(tb, settle=10.0):
    """CPU seconds the testbed's sshds and everything they ran used so far (sessions ended).

    Linux adds a reaped child's CPU (its own and its reaped children's) to its parent's, so the
    listening sshds' children times hold every connection's, once those ended: wait for them.
    """
    procs = [psutil.Process(d.proc.pid) for d in tb.sshds]
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and any(p.children() for p in procs):
        time.sleep(0.05)
    return sum(p.cpu_times().children_user + p.cpu_times().children_system for p in procs)


def w1(tb, njobs, slots_per_node=4, nodes=4, repeat=3):
    jobs = "".join(f"echo job {i}\n" for i in range(njobs))
    expected = [f"job {i}" for i in range(njobs)]
    hosts = [f"n{i}" for i in range(1, nodes + 1)]
    slots = [h for h in hosts for _ in range(slots_per_node)]
    shares = []
    for i, h in enumerate(slots):
        path = os.path.join(tb.root, f"floor-{i}.txt")
        with open(path, "w") as f:
            f.write("".join(f"echo job {k}\n" for k in range(i, njobs, len(slots))))
        shares.append((h, path))
    nodes_args = [a for h in hosts for a in ("-n", f"{slots_per_node}/{h}")]
    runs = [("clstr", clstr_argv(tb, "-", *nodes_args), jobs),
            ("floor: a job loop a slot, no clstr", floor_argv(tb, shares), None),
            ("clstr --no-pipeline", clstr_argv(tb, "--no-pipeline", "-", *nodes_args), jobs)]
    once = set()
    if have("parallel"):
        login = ",".join(f"{slots_per_node}/{h}" for h in hosts)
        for name, extra in (("GNU parallel -M", ["-M"]), ("GNU parallel", [])):
            runs.append((name, ["parallel", "--will-cite", "--ssh", tb.ssh, "-S", login, *extra], jobs))
            once.add(name)
    def measure(run):
        _, argv, stdin = run
        before = node_cpu(tb)
        r = timed(argv, stdin=stdin)
        r["node_cpu"] = node_cpu(tb) - before
        r["check"] = check(r["out"].splitlines(), expected)
        return r
    rows = interleaved(runs, repeat, measure, once)
    title = f"W1: {njobs} trivial jobs on {nodes * slots_per_node} slots ({nodes} nodes x {slots_per_node})"
    if repeat > 1:
        title += f", median of {repeat} interleaved runs (GNU parallel: one)"
    table(title, rows)
    print("\nCPU a job, client side (the tool, its workers and ssh) and node side (sshd, shells, jobs):")
    print("| tool | client ms a job | node ms a job |")
    print("|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['cpu'] / njobs * 1000:.2f} | {r['node_cpu'] / njobs * 1000:.2f} |")
    sys.stdout.flush()


def anchors(tb, hosts, hostlist, cmd, fanout, pssh_fanouts=None):
    """(name, argv, env) of pdsh, clush and pssh (those installed), each running ``cmd`` on every
    host at a fan-out of ``fanout`` (pssh at each of ``pssh_fanouts`` if given)."""
    runs = []
    if have("pdsh"):
        env = dict(os.environ, PDSH_RCMD_TYPE="ssh", PDSH_SSH_ARGS=f"-F {tb.ssh_config} %h")
        runs.append((f"pdsh -f {fanout}", ["pdsh", "-f", str(fanout), "-w", hostlist, cmd], env))
    if have("clush"):
        runs.append((f"clush -f {fanout}", ["clush", "-f", str(fanout), "-w", hostlist, "-o", f"-F {tb.ssh_config}",
                                            cmd], None))
    pssh = shutil.which("parallel-ssh") or shutil.which("pssh")
    if pssh:
        hostfile = os.path.join(tb.root, f"hosts-{len(hosts)}-{hosts[0]}.txt")
        with open(hostfile, "w") as f:
            f.write("".join(h + "\n" for h in hosts))
        for p in pssh_fanouts or (fanout,):
            runs.append((f"pssh -p {p}", [pssh, "-p", str(p), "-h", hostfile, "-x", f"-F {tb.ssh_config}", "-i", cmd],
                         None))
    return runs


def addresses(out):
    """The node addresses a fan-out printed (``echo $SSH_CONNECTION | cut -d' ' -f3``), tool prefixes aside."""
    return [w for w in (ln.split()[-1] for ln in out.splitlines() if ln.strip()) if w.startswith("127.")]


def fanout_rows(title, repeat, runs, check_out, timeout=600, once=()):
    """(rows, title) of runs (name, argv, env) measured interleaved; ``check_out(out)``: "ok" or what is wrong."""
    def measure(run):
        _, argv, env = run
        r = timed(argv, env=env, timeout=timeout)
        r["check"] = check_out(r["out"])
        return r
    rows = interleaved(runs, repeat, measure, once)
    if repeat > 1:
        title += f" (median of {repeat} interleaved runs; wall range in brackets)"
    return rows, title


def w2(tb, nodes, repeat=1):
    hosts = tb.good[:nodes]
    cmd = "echo $SSH_CONNECTION | cut -d' ' -f3"
    expected = sorted(tb.addr[h] for h in hosts)
    runs = [("clstr -E", clstr_argv(tb, "-n", ",".join(hosts), "-E", cmd), None)]
    runs += anchors(tb, hosts, f"n[1-{nodes}]", cmd, nodes)
    once = {"GNU parallel --nonall"}  # 5x slower than the rest: one run tells enough
    if have("parallel"):
        runs.append(("GNU parallel --nonall", ["parallel", "--will-cite", "--ssh", tb.ssh, "-j", str(nodes), "--nonall",
                                               "-S", ",".join(hosts), cmd], None))
    rows, title = fanout_rows(f"W2: one command on each of {nodes} nodes", repeat, runs,
                              lambda out: check(addresses(out), expected), once=once)
    table(title, rows)


def w5(tb, nodes, repeat=1):
    """One command on each of ``nodes`` nodes (1,000 by default): wall, CPU, memory, processes at once."""
    hosts = tb.good[:nodes]
    cmd = "echo $SSH_CONNECTION | cut -d' ' -f3"
    expected = sorted(tb.addr[h] for h in hosts)
    hostlist = f"n[1-{nodes}]"
    runs = [("clstr -E", clstr_argv(tb, "-n", hostlist, "-E", cmd), None),
            ("clstr -E -m 50", clstr_argv(tb, "-m", "50", "-n", hostlist, "-E", cmd), None)]
    runs += anchors(tb, hosts, hostlist, cmd, nodes)
    rows, title = fanout_rows(f"W5: one command on each of {nodes} nodes", repeat, runs,
                              lambda out: check(addresses(out), expected), timeout=900)
    print(f"\n{title}")
    print("| tool | wall s | CPU s | peak USS MB (tree) | processes at once | output |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {wall_text(r)} | {r['cpu']:.2f} | {r['rss'] / 2**20:.0f} | {r['procs']} | {r['check']} |")
    sys.stdout.flush()


def w7(tb, nodes=100, fanout=32, repeat=3):
    """One command on each of ``nodes`` nodes behind one jump host whose sshd drops handshakes
    beyond a few in flight (MaxStartups 2:50:4): how many nodes each tool got done, and how fast."""
    hosts = [f"behind{i}" for i in range(1, nodes + 1)]
    cmd = "echo done"
    hostlist = f"behind[1-{nodes}]"
    runs = [("clstr -E", clstr_argv(tb, "-n", hostlist, "-E", cmd), None)]
    # pssh -p 2: what pssh users fall back to when a host drops handshakes
    runs += anchors(tb, hosts, hostlist, cmd, fanout, pssh_fanouts=(fanout, 2))
    if have("parallel"):
        runs.append((f"GNU parallel -j {fanout} --nonall", ["parallel", "--will-cite", "--ssh", tb.ssh, "-j",
                                                            str(fanout), "--nonall", "-S", ",".join(hosts), cmd],
                     None))

    def done(out):
        n = sum(1 for ln in out.splitlines() if ln.strip().endswith("done"))
        return "ok" if n == nodes else f"{n} of {nodes} nodes done"
    rows, title = fanout_rows(f"W7: one command on each of {nodes} nodes behind one jump host with MaxStartups "
                              "2:50:4", repeat, runs, done, timeout=300)
    table(title, rows)


def interleaved(runs, repeat, measure, once=()):
    """[(name, median run)] of ``runs`` (tuples, a name first) measured ``repeat`` rounds, each tool
    once a round, so that drifts of the machine hit all alike; tools in ``once`` run one round."""
    results = {run[0]: [] for run in runs}
    for i in range(repeat):
        for run in runs:
            if not (i and run[0] in once):
                results[run[0]].append(measure(run))
    return [(name, median_run(got)) for name, got in results.items()]


def wall_text(r):
    """Wall seconds, with the range over the runs when there were several."""
    return f"{r['wall']:.2f}" + (" [{:.2f}-{:.2f}]".format(*r["range"]) if "range" in r else "")


def median_run(runs):
    """The run of median wall time, its check the worst seen, with the range of wall times."""
    ordered = sorted(runs, key=lambda r: r["wall"])
    r = dict(ordered[len(ordered) // 2])
    bad = [x["check"] for x in runs if x["check"] != "ok"]
    r["check"] = bad[0] if bad else "ok"
    if len(runs) > 1:
        r["range"] = (ordered[0]["wall"], ordered[-1]["wall"])
    return r


def w3(tb, timeout=3):
    good = tb.good[:8]
    jobs = "".join(f"echo job {i}\n" for i in range(40))
    expected = [f"job {i}" for i in range(40)]
    nodes = good + ["refused", "hung", "badauth"]
    rows = []
    r = timed(clstr_argv(tb, "-", "--connect-timeout", str(timeout), "-n", ",".join(nodes)), stdin=jobs)
    r["check"] = check(r["out"].splitlines(), expected)
    rows.append(("clstr", r))
    if have("parallel"):
        r = timed(["parallel", "--will-cite", "--ssh", f"{tb.ssh} -o ConnectTimeout={timeout}", "-S",
                   ",".join(nodes)], stdin=jobs, timeout=60)
        r["check"] = check(r["out"].splitlines(), expected) if r["code"] != "timeout" else "did not end in 60 s"
        rows.append(("GNU parallel", r))
    table(f"W3: 40 jobs on 8 good nodes + refused, hung, auth-failing (connect timeout {timeout} s; "
          f"target: clstr within {timeout + 2} s)", rows)


def w6(tb, seconds=2, per_slot=3, slots=16, repeat=3):
    """Jobs of seconds: pipelined clstr must be no slower than one session a job."""
    njobs = per_slot * slots
    jobs = "".join(f"sleep {seconds}; echo job {i}\n" for i in range(njobs))
    expected = [f"job {i}" for i in range(njobs)]
    nodes_args = ["-n", f"{slots // 4}/n[1-4]"]
    runs = [("clstr", clstr_argv(tb, "-", *nodes_args)),
            ("clstr --no-pipeline", clstr_argv(tb, "--no-pipeline", "-", *nodes_args))]
    def measure(run):
        r = timed(run[1], stdin=jobs)
        r["check"] = check(r["out"].splitlines(), expected)
        return r
    table(f"W6: {njobs} jobs of {seconds} s on {slots} slots (ideal {per_slot * seconds} s), median of {repeat}",
          interleaved(runs, repeat, measure))


DRIVER = """
import os, resource, sys, time, clstr
jobs = [f"echo job {i}" for i in range(int(sys.argv[2]))]
t = time.monotonic()
r = clstr.run(jobs, [sys.argv[3]], ssh=sys.argv[1], stdout=open(os.devnull, "wb"))
wall = time.monotonic() - t
s = resource.getrusage(resource.RUSAGE_SELF)
print(len(r.succeeded), wall, s.ru_utime + s.ru_stime)
"""


def w4(tb, nodes, slots, njobs):
    me = None

    def clstr_python(p):
        # the supervisor and its workers (python), not ssh
        return p.name().startswith("python")

    r = timed([PY, "-c", DRIVER, tb.ssh, str(njobs), f"{slots}/n[1-{nodes}]"], uss_filter=clstr_python)
    del me
    ok, wall, sup_cpu = r["out"].split()
    total = nodes * slots
    print(f"\nW4: {nodes} nodes x {slots} slots = {total} slots, {njobs} trivial jobs")
    print("| figure | value |")
    print("|---|---|")
    print(f"| jobs succeeded | {ok} of {njobs} |")
    print(f"| wall time | {float(wall):.2f} s ({float(wall) / njobs * 1000:.2f} ms a job) |")
    print(f"| supervisor CPU time | {float(sup_cpu):.2f} s ({float(sup_cpu) / njobs * 1000:.3f} ms a job) |")
    print(f"| CPU, all of clstr and its ssh | {r['cpu']:.2f} s |")
    print(f"| peak unique memory (USS) of clstr's {r['uss_count']} python processes | "
          f"{r['uss'] / 2**20:.0f} MB, {r['uss'] / max(1, r['uss_count'] - 1) / 2**20:.2f} MB a slot |")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", default=["W1", "W2", "W3", "W4", "W6", "W7"])
    ap.add_argument("--jobs", type=int, default=2000, help="W1 job count")
    ap.add_argument("--w1-repeat", type=int, default=3, help="W1 runs of clstr and the floor, interleaved")
    ap.add_argument("--w2-nodes", type=int, default=200)
    ap.add_argument("--w5-nodes", type=int, default=1000)
    ap.add_argument("--w5-repeat", type=int, default=3, help="W5 runs of each tool, interleaved (median shown)")
    ap.add_argument("--repeat", type=int, default=7, help="W2 runs of each tool, interleaved (median shown)")
    ap.add_argument("--w4", default="50x10x5000", help="nodes x slots x jobs for W4")
    args = ap.parse_args()
    want = {w.upper() for w in args.workloads}
    # bytecode as an installed clstr has it (pip writes it; PYTHONDONTWRITEBYTECODE or a fresh
    # checkout would leave clstr compiling its modules at every start, ~40 ms)
    compileall.compile_dir(os.path.join(HERE, "..", "clstr"), quiet=1)
    n4, s4, j4 = (int(x) for x in args.w4.split("x"))
    count = max(8, args.w2_nodes if "W2" in want else 0, n4 if "W4" in want else 0,
                args.w5_nodes if "W5" in want else 0)
    print(f"clstr benchmark: {os.cpu_count()} cores, {count} loopback sshd nodes, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory(prefix="clstr-bench-") as root:
        with Testbed(root, count=count, max_sessions=16) as tb:
            if "W1" in want:
                w1(tb, args.jobs, repeat=args.w1_repeat)
            if "W2" in want:
                w2(tb, args.w2_nodes, args.repeat)
            if "W3" in want:
                w3(tb)
            if "W4" in want:
                w4(tb, n4, s4, j4)
            if "W5" in want:
                w5(tb, args.w5_nodes, args.w5_repeat)
            if "W6" in want:
                w6(tb)
            if "W7" in want:
                w7(tb)


if __name__ == "__main__":
    main()
