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


def compiled():
    """clstr's bytecode written, as an installed clstr has it (pip writes it; PYTHONDONTWRITEBYTECODE
    or a fresh checkout would leave clstr compiling its modules at every start, ~40 ms)."""
    compileall.compile_dir(os.path.join(HERE, "..", "clstr"), quiet=1)


def timed(argv, env=None, stdin=None, uss_filter=None, timeout=600, cwd=None):
    """Run argv; returns dict(wall, cpu, rss, uss, uss_count, out, err, code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = machine_cpu()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
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
    machine = machine_cpu() - busy
    sampler.stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dict(wall=wall, cpu=cpu, rss=sampler.peak_rss, uss=sampler.peak_uss, uss_count=sampler.uss_count,
                procs=sampler.peak_procs, out=out, err=err, code=code, machine=machine)


def clstr_argv(tb, *args):
    return [PY, "-m", "clstr", "--ssh", tb.ssh, *args]


def check(lines_out, expected):
    """'ok' or what is missing or extra."""
    got = sorted(lines_out)
    if got == sorted(expected):
        return "ok"
    missing = len(set(expected) - set(got))
    return f"{missing} missing, {len(got)} lines for {len(expected)}"


def table(title, rows, machine=False):
    """A table of runs; ``machine``: with the CPU the whole machine spent during each (the nodes' side
    too: on the testbed their sshds and shells share the cores with the tools)."""
    print(f"\n{title}")
    extra = (" machine CPU s (nodes too) |", "---|") if machine else ("", "")
    print(f"| tool | wall s | CPU s |{extra[0]} peak USS MB | output | wall vs clstr |")
    print(f"|---|---|---|{extra[1]}---|---|---|")
    base = rows[0][1]["wall"] if rows else None
    for name, r in rows:
        ratio = f"{r['wall'] / base:.2f}x" if base else ""
        both = f" {r['machine']:.2f} |" if machine else ""
        print(f"| {name} | {wall_text(r)} | {r['cpu']:.2f} |{both} {r['rss'] / 2**20:.0f} | {r['check']} | {ratio} |")
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
    runs = [("clstr -E", clstr_argv(tb, "-n", ",".join(hosts), "-E", cmd), None),
            (f"clstr -E --max-connecting {nodes} (the anchors' fan-out)",
             clstr_argv(tb, "--max-connecting", str(nodes), "-n", ",".join(hosts), "-E", cmd), None)]
    # warm: a run before left its connections (--persist), which the measured runs ride; their
    # directory is the bench's own, and they are ended at the end
    runtime = tempfile.mkdtemp(prefix="bp", dir="/tmp")
    penv = dict(os.environ, XDG_RUNTIME_DIR=runtime)
    warm = clstr_argv(tb, "--persist", "5m", "-n", ",".join(hosts), "-E", cmd)
    timed(warm, env=penv)
    runs.append(("clstr -E --persist 5m, warm (a run before opened its connections)", warm, penv))
    runs.append(("floor, warm: a bare ssh a node over the same connections, all at once (xargs -P)",
                 warm_floor(tb, hosts, cmd, runtime), penv))
    runs += anchors(tb, hosts, f"n[1-{nodes}]", cmd, nodes)
    once = {"GNU parallel --nonall"}  # 5x slower than the rest: one run tells enough
    if have("parallel"):
        runs.append(("GNU parallel --nonall", ["parallel", "--will-cite", "--ssh", tb.ssh, "-j", str(nodes), "--nonall",
                                               "-S", ",".join(hosts), cmd], None))
    try:
        rows, title = fanout_rows(f"W2: one command on each of {nodes} nodes", repeat, runs,
                                  lambda out: check(addresses(out), expected), once=once)
    finally:
        subprocess.run(clstr_argv(tb, "--persist-stop"), env=penv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(runtime, ignore_errors=True)
    table(title, rows, machine=True)


def warm_floor(tb, hosts, cmd, runtime):
    """The argv of the floor of a warm fan-out: one ssh a node, all at once, over the connections
    --persist left (their sockets where clstr keeps them), no clstr."""
    import shlex
    from clstr import controldir, ssh as cssh
    base = cssh.base_argv(cssh.SshConfig.from_strings(tb.ssh))
    paths = controldir.PersistentPaths(base, environ=dict(os.environ, XDG_RUNTIME_DIR=runtime))
    lines = os.path.join(runtime, "floor-args.txt")
    with open(lines, "w") as f:
        for h in hosts:
            f.write(" ".join(shlex.quote(a) for a in ["-o", "ControlMaster=no", "-o", f"ControlPath={paths.path((h, 0))}",
                                                      "-n", "--", h, cmd]) + "\n")
    return ["xargs", "-P", str(len(hosts)), "-L", "1", "-a", lines, *base]


def w5(tb, nodes, repeat=1, tools=None):
    """One command on each of ``nodes`` nodes (1,000 by default): wall, CPU, memory, processes at once;
    ``tools``: only the runs whose names start with one of these (None: all)."""
    hosts = tb.good[:nodes]
    cmd = "echo $SSH_CONNECTION | cut -d' ' -f3"
    expected = sorted(tb.addr[h] for h in hosts)
    hostlist = f"n[1-{nodes}]"
    runs = [("clstr -E", clstr_argv(tb, "-n", hostlist, "-E", cmd), None),
            ("clstr -E -m 50", clstr_argv(tb, "-m", "50", "-n", hostlist, "-E", cmd), None),
            (f"clstr -E --max-connecting {nodes} (the anchors' fan-out)",
             clstr_argv(tb, "--max-connecting", str(nodes), "-n", hostlist, "-E", cmd), None)]
    runs += anchors(tb, hosts, hostlist, cmd, nodes)
    if tools:
        runs = [r for r in runs if any(r[0].startswith(t) for t in tools)]
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


def w8_files(root, njobs, size):
    """``njobs`` input files of ``size`` bytes under root/local/in (printable, each its own), and
    the sha256 of each one's result (its case swapped, what the job makes of it)."""
    import base64
    import hashlib
    local = os.path.join(root, "local")
    os.makedirs(os.path.join(local, "in"), exist_ok=True)
    expected = {}
    for i in range(njobs):
        seed = hashlib.sha256(str(i).encode()).digest()
        body = base64.b64encode(seed * (size // 32 + 1))[:size]
        name = f"in/{i}.dat"
        with open(os.path.join(local, name), "wb") as f:
            f.write(body)
        expected[name + ".out"] = hashlib.sha256(body.swapcase()).hexdigest(), hashlib.sha256(body).hexdigest()
    return local, expected


def w8_check(base, expected, which=0, remove=True):
    """'ok', or how many results are missing or wrong, under ``base``; removes them (next run).
    ``which``: 0 the job's result, 1 the input itself (the transport alone)."""
    import hashlib
    missing = wrong = 0
    for name, digests in expected.items():
        digest = digests[which]
        path = os.path.join(base, name)
        try:
            with open(path, "rb") as f:
                wrong += hashlib.sha256(f.read()).hexdigest() != digest
            if remove:
                os.unlink(path)
        except FileNotFoundError:
            missing += 1
    return "ok" if not (missing or wrong) else f"{missing} missing, {wrong} wrong of {len(expected)}"


def w8(tb, njobs=400, size=256 << 10, nodes=4, slots_per_node=4, repeat=3):
    """Jobs that carry their files (issue 22): each sends a 256 KB input and returns a 256 KB
    result (--trc), every result checked by checksum; clstr vs GNU parallel --trc with and without
    ControlMaster, clstr with nothing to transfer (the inputs already on the node), and rsync
    alone moving the same files over shared connections (the transport GNU parallel uses)."""
    root = os.path.join(tb.root, "w8")
    local, expected = w8_files(root, njobs, size)
    remote = os.path.join(root, "remote")  # the nodes share this disk: a work directory of their own
    hosts = [f"n{i}" for i in range(1, nodes + 1)]
    inputs = [f"in/{i}.dat" for i in range(njobs)]
    cmd = "tr a-zA-Z A-Za-z < {} > {}.out"
    nodes_args = [a for h in hosts for a in ("-n", f"{slots_per_node}/{h}")]
    login = ",".join(f"{slots_per_node}/{h}" for h in hosts)
    runs = [("clstr --trc", clstr_argv(tb, "--wd", remote, "--trc", "{}.out", *nodes_args, "--", cmd, ":::",
                                       *inputs), local),
            ("clstr, no files (inputs already there)", clstr_argv(tb, "--wd", remote, *nodes_args, "--", cmd,
                                                                   ":::", *inputs), remote)]
    if have("parallel"):
        for name, extra in (("GNU parallel --trc -M", ["-M"]), ("GNU parallel --trc", [])):
            runs.append((name, ["parallel", "--will-cite", "--ssh", tb.ssh, "-S", login, "--wd", remote, *extra,
                                "--trc", "{}.out", cmd, ":::", *inputs], local))
    if have("rsync"):
        runs.append(("rsync alone, a file each way over a shared connection", rsync_argv(tb, hosts, slots_per_node,
                                                                                     local, remote, inputs), local))

    def measure(run):
        name, argv, base = run
        if base == remote:  # the inputs where the jobs find them, nothing to send
            shutil.rmtree(remote, ignore_errors=True)
            shutil.copytree(os.path.join(local, "in"), os.path.join(remote, "in"))
        else:
            shutil.rmtree(remote, ignore_errors=True)
            os.makedirs(remote)
        # output to files, not to pipes: GNU parallel -M leaves processes holding what it was given
        err = os.path.join(root, "stderr")
        marker = f"w8-{time.monotonic_ns()}"
        t0 = time.monotonic()
        r = timed(["sh", "-c", 'exec "$@" >/dev/null 2>"$0"', err, *argv],
                  env=dict(os.environ, LC_ALL="C", CLSTR_BENCH_RUN=marker), timeout=900, cwd=local)
        exited = r["wall"]
        left, stuck = outlived(marker)  # processes of the run at work after it exited (GNU parallel -M)
        with open(err, errors="replace") as f:
            r["err"] = f.read().strip()
        rsync = name.startswith("rsync")
        r["check"] = w8_check(base, expected, rsync) if r["code"] == 0 else \
            f"exit {r['code']}: {r['err'].splitlines()[-1][:80] if r['err'] else ''}"
        if left:
            r["wall"] = time.monotonic() - t0  # its work was done when its last process ended
            said = f", saying {r['err'].splitlines()[0][:60]!r}" if r["err"] else ""
            r["check"] = (f"exited at {exited:.1f} s (exit {r['code']}{said}); {left} of its processes worked on"
                          + (f", {stuck} of them still after 120 s (killed)" if stuck else "")
                          + f"; then: {r['check']}")
        return r
    rows = interleaved(runs, repeat, measure)
    table(f"W8: {njobs} jobs on {nodes * slots_per_node} slots ({nodes} nodes x {slots_per_node}), each sending a "
          f"{size >> 10} KB input and returning a {size >> 10} KB result, checked by checksum; median of {repeat} "
          "interleaved runs", rows)


def outlived(marker, limit=120):
    """(how many processes carrying ``marker`` in their environment were left running, how many of
    them still ran ``limit`` s later and were killed), after waiting for them to end."""
    def alive():
        found = []
        for p in psutil.process_iter():
            try:
                if p.environ().get("CLSTR_BENCH_RUN") == marker:
                    found.append(p)
            except psutil.Error:
                continue
        return found
    first = alive()
    deadline = time.monotonic() + limit
    while first and time.monotonic() < deadline and alive():
        time.sleep(0.1)
    stuck = alive()
    for p in stuck:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(stuck, timeout=10)
    return len(first), len(stuck)


def rsync_argv(tb, hosts, slots_per_node, local, remote, inputs):
    """The transport alone: every input sent to its node's work directory and a result of its size
    brought back (the input itself, as <name>.out here), one rsync a file each way as GNU parallel
    runs them, 16 lanes, over one ControlMaster connection a node."""
    lanes = [h for h in hosts for _ in range(slots_per_node)]
    ctl = os.path.join(tb.root, "w8-ctl-%h")
    ssh = f"{tb.ssh} -o ControlPath={ctl}"
    script = ["set -e", f"cd {local}"]
    script += [f"{tb.ssh} -o ControlMaster=yes -o ControlPersist=60 -o ControlPath={ctl} -fN {h}" for h in hosts]
    for lane, h in enumerate(lanes):
        mine = inputs[lane::len(lanes)]
        steps = "; ".join(f"rsync -q -R -e '{ssh}' {f} {h}:{remote}/ && "
                          f"rsync -q -e '{ssh}' {h}:{remote}/{f} {f}.out" for f in mine)
        script.append(f"( {steps} ) &")
    script.append("wait")
    script += [f"{tb.ssh} -o ControlPath={ctl} -O exit {h} 2>/dev/null" for h in hosts]
    path = os.path.join(tb.root, "w8-rsync.sh")
    with open(path, "w") as f:
        f.write("\n".join(script) + "\n")
    return ["sh", path]


def interleaved(runs, repeat, measure, once=()):
    """[(name, median run)] of ``runs`` (tuples, a name first) measured ``repeat`` rounds, each tool
    once a round, so that drifts of the machine hit all alike; tools in ``once`` run one round."""
    results = {run[0]: [] for run in runs}
    for i in range(repeat):
        for run in runs:
            if not (i and run[0] in once):
                results[run[0]].append(measure(run))
    return [(name, median_run(got)) for name, got in results.items()]


def checked_run(expected, env=None, timeout=600):
    """A measure of a run (name, argv, stdin): timed, its stdout's lines checked against ``expected``."""
    def measure(run):
        _, argv, stdin = run
        r = timed(argv, stdin=stdin, env=env, timeout=timeout)
        r["check"] = check(r["out"].splitlines(), expected)
        return r
    return measure


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


def gateway_split(tb, gws, nodes):
    """(--gateway arguments, topology.conf text) giving each gateway an equal share of ``nodes``, in order."""
    per = len(nodes) // len(gws)
    shares = {gw: nodes[i * per:(i + 1) * per if i < len(gws) - 1 else len(nodes)] for i, gw in enumerate(gws)}
    from clstr import hostlist
    args = [a for gw, share in shares.items() for a in ("--gateway", f"{gw}={hostlist.fold(share)}")]
    import socket
    topo = "[routes]\n" + f"{socket.gethostname().split('.')[0]}: {hostlist.fold(list(gws))}\n" + "".join(
        f"{gw}: {hostlist.fold(share)}\n" for gw, share in shares.items())
    return args, topo


def gateway_cpu(out_json):
    """CPU seconds the gateways of a clstr run said they used (their bye), from its --json."""
    import json
    try:
        with open(out_json) as f:
            return sum(g.get("cpu") or 0.0 for g in json.load(f).get("gateways", {}).values())
    except (OSError, ValueError):
        return float("nan")


def machine_cpu():
    """CPU seconds the whole machine has been busy (every core, /proc/stat): on the testbed the
    nodes' side shares it with the tools."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def gateway_times(path):
    """The CPU seconds /usr/bin/time wrote for each gateway's python into ``path``, summed (0: none ran)."""
    total = 0.0
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    try:
                        total += float(parts[0]) + float(parts[1])
                    except ValueError:
                        continue  # "Command exited with non-zero status": not a time
    except OSError:
        pass
    return total


def w9(tb, nodes=2000, ngw=4, repeat=3):
    """One command on each of ``nodes`` nodes through ``ngw`` gateways, against clstr flat and clush's tree mode."""
    gws = tb.good[:ngw]
    hosts = tb.good[ngw:ngw + nodes]
    cmd = "echo $SSH_CONNECTION | cut -d' ' -f3"
    expected = sorted(tb.addr[h] for h in hosts)
    from clstr import hostlist
    folded = hostlist.fold(hosts)
    gw_args, topo = gateway_split(tb, gws, hosts)
    topofile = os.path.join(tb.root, "topology.conf")
    with open(topofile, "w") as f:
        f.write(topo)
    out_json = os.path.join(tb.root, "w9.json")
    # each gateway's python (clstr's and clush's alike) runs under /usr/bin/time, which adds its
    # CPU and its children's (their ssh) to one file: the gateways' CPU, measured the same way
    gw_times = os.path.join(tb.root, "gateway-times")
    timed_python = os.path.join(tb.root, "timed-python3")
    with open(timed_python, "w") as f:
        f.write(f"#!/bin/sh\nexec /usr/bin/time -a -o {gw_times} -f '%U %S' python3 \"$@\"\n")
    os.chmod(timed_python, 0o755)
    runs = [(f"clstr -E through {ngw} gateways", clstr_argv(tb, *gw_args, "--gateway-python", timed_python,
                                                            "--json", out_json, "-n", folded, "-E", cmd), None),
            ("clstr -E flat", clstr_argv(tb, "-n", folded, "-E", cmd), None)]
    if have("clush"):
        env = dict(os.environ, CLUSTERSHELL_GW_PYTHON_EXECUTABLE=timed_python)
        runs.append((f"clush --topology (tree mode, {ngw} gateways)",
                     ["clush", "--topology", topofile, "-f", str(nodes), "-w", folded, "-o", f"-F {tb.ssh_config}",
                      cmd], env))
        runs.append((f"clush -f {nodes} flat", ["clush", "-f", str(nodes), "-w", folded, "-o", f"-F {tb.ssh_config}",
                                                cmd], None))
    gw_cpu = []

    def measure(run):
        name, argv, env = run
        if os.path.exists(gw_times):
            os.unlink(gw_times)
        r = timed(argv, env=env, timeout=900)
        r["check"] = check(addresses(r["out"]), expected)
        r["gw_cpu"] = gateway_times(gw_times)
        if "gateways" in name and name.startswith("clstr"):
            gw_cpu.append(gateway_cpu(out_json))
        return r
    rows = interleaved(runs, repeat, measure)
    print(f"\nW9: one command on each of {nodes} nodes, {ngw} gateways of {nodes // ngw} nodes each"
          + (f" (median of {repeat} interleaved runs; wall range in brackets)" if repeat > 1 else ""))
    print("| tool | wall s | root CPU s (its tree here) | gateways' CPU s | client CPU s (root + gateways) | "
          "machine CPU s (all of it: nodes too) | peak USS MB (root tree) | output | wall vs clstr flat |")
    print("|---|---|---|---|---|---|---|---|---|")
    flat = dict(rows)["clstr -E flat"]
    for name, r in rows:
        gw = r["gw_cpu"]
        print(f"| {name} | {wall_text(r)} | {r['cpu']:.2f} | {gw:.2f} | {r['cpu'] + gw:.2f} | {r['machine']:.2f} | "
              f"{r['rss'] / 2**20:.0f} | {r['check']} | {r['wall'] / flat['wall']:.2f}x |")
    through = rows[0][1]
    if gw_cpu:
        gw_cpu.sort()
        print(f"\nclstr through gateways: the gateways' own CPU (their bye), median {gw_cpu[len(gw_cpu) // 2]:.2f} s "
              f"[{gw_cpu[0]:.2f}-{gw_cpu[-1]:.2f}]; the root's CPU is {through['cpu'] / flat['cpu'] * 100:.1f}% of flat "
              f"clstr's; wall {through['wall'] / flat['wall']:.2f}x flat clstr's")
    sys.stdout.flush()


def w10(tb, njobs=2000, ngw=2, nodes=16, slots=4, repeat=3):
    """``njobs`` short jobs on ``nodes * slots`` slots behind ``ngw`` gateways, against the same slots driven directly."""
    gws = tb.good[:ngw]
    hosts = tb.good[ngw:ngw + nodes]
    jobs = "".join(f"echo job {i}\n" for i in range(njobs))
    expected = [f"job {i}" for i in range(njobs)]
    gw_args, _ = gateway_split(tb, gws, hosts)
    node_args = [a for h in hosts for a in ("-n", f"{slots}/{h}")]
    runs = [(f"clstr through {ngw} gateways", clstr_argv(tb, *gw_args, "-", *node_args), jobs),
            ("clstr direct", clstr_argv(tb, "-", *node_args), jobs)]

    rows = interleaved(runs, repeat, checked_run(expected))
    table(f"W10: {njobs} trivial jobs on {nodes * slots} slots ({nodes} nodes x {slots}), behind {ngw} gateways "
          f"or driven directly" + (f", median of {repeat} interleaved runs" if repeat > 1 else ""), rows)
    print("| tool | wall ms a job (all slots) | root CPU ms a job |")
    print("|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['wall'] / njobs * 1000:.2f} | {r['cpu'] / njobs * 1000:.3f} |")
    sys.stdout.flush()


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
    ap.add_argument("workloads", nargs="*", default=["W1", "W2", "W3", "W4", "W6", "W7", "W8"])
    ap.add_argument("--jobs", type=int, default=2000, help="W1 job count")
    ap.add_argument("--w1-repeat", type=int, default=3, help="W1 runs of clstr and the floor, interleaved")
    ap.add_argument("--w2-nodes", type=int, default=200)
    ap.add_argument("--w5-nodes", type=int, default=1000)
    ap.add_argument("--w5-repeat", type=int, default=3, help="W5 runs of each tool, interleaved (median shown)")
    ap.add_argument("--w5-tools", default=None, metavar="NAMES",
                    help="W5: only these runs, by the start of their names, comma-separated (e.g. 'clstr -E,pssh')")
    ap.add_argument("--repeat", type=int, default=7, help="W2 runs of each tool, interleaved (median shown)")
    ap.add_argument("--w8-repeat", type=int, default=3, help="W8 runs of each tool, interleaved (median shown)")
    ap.add_argument("--w4", default="50x10x5000", help="nodes x slots x jobs for W4")
    ap.add_argument("--w9-nodes", type=int, default=2000, help="W9: nodes behind the gateways")
    ap.add_argument("--w9-repeat", type=int, default=3, help="W9 and W10 runs of each tool, interleaved")
    args = ap.parse_args()
    want = {w.upper() for w in args.workloads}
    compiled()
    n4, s4, j4 = (int(x) for x in args.w4.split("x"))
    count = max(8, args.w2_nodes if "W2" in want else 0, n4 if "W4" in want else 0,
                args.w5_nodes if "W5" in want else 0, args.w9_nodes + 4 if "W9" in want else 0)
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
                w5(tb, args.w5_nodes, args.w5_repeat, args.w5_tools.split(",") if args.w5_tools else None)
            if "W6" in want:
                w6(tb)
            if "W7" in want:
                w7(tb)
            if "W8" in want:
                w8(tb, repeat=args.w8_repeat)
            if "W9" in want:
                w9(tb, args.w9_nodes, repeat=args.w9_repeat)
            if "W10" in want:
                w10(tb, repeat=args.w9_repeat)


if __name__ == "__main__":
    main()
