#!/usr/bin/env python3
"""What one more node costs each tool's own machinery, without ssh: W2's overhead, taken apart.

ssh is replaced by /bin/echo (a stub that exits at once), so what is left is
each tool's own CPU a node: clstr's forked worker and supervisor work, pssh's
and pdsh's process start. Also measured in this process: a multiprocessing
worker that does nothing but wait for one message (the floor of the design:
one forked process a slot) and a bare os.fork, both after clstr's imports.

    python3 bench/forkcost.py [--nodes 200] [--rounds 5]

CPU is that of the tool and every descendant it waited for (RUSAGE_CHILDREN).
"""
import argparse
import gc
import importlib
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
importlib.import_module("clstr.api")  # the supervisor's imports, as when it forks


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tool_cpu(argv, env=None):
    """CPU seconds of argv and its waited-for descendants."""
    before = cpu_children()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return cpu_children() - before


def _wait_one(conn):
    conn.recv()


def fork_floor(n, use_mp):
    """(parent, children) CPU seconds a process, forking n workers that each wait for one message."""
    ctx = multiprocessing.get_context("fork")
    gc.freeze()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = cpu_children()
    procs, conns = [], []
    for _ in range(n):
        ours, theirs = ctx.Pipe()
        if use_mp:
            p = ctx.Process(target=_wait_one, args=(theirs,), daemon=True)
            p.start()
        else:
            p = os.fork()
            if p == 0:
                _wait_one(theirs)
                os._exit(0)
        procs.append(p)
        conns.append(ours)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    for c in conns:
        c.send(None)
    for p in procs:
        p.join() if use_mp else os.waitpid(p, 0)
    gc.unfreeze()
    parent = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return parent / n, (cpu_children() - c0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.nodes
    hosts = [f"n{i}" for i in range(1, n + 1)]
    stub = tempfile.mkdtemp(prefix="clstr-stub-")
    os.symlink("/bin/echo", os.path.join(stub, "ssh"))
    env = dict(os.environ, PATH=stub + os.pathsep + os.environ["PATH"])
    # without remote cleanup: /bin/echo prints no start mark, and every node would count as never run
    runs = {"clstr -E": [sys.executable, "-m", "clstr", "--ssh", "/bin/echo", "--no-remote-cleanup", "-n",
                         ",".join(hosts), "-E", "true"]}
    pssh = shutil.which("parallel-ssh") or shutil.which("pssh")
    if pssh:
        runs["pssh"] = [pssh, "-p", str(n), "-H", " ".join(hosts), "-i", "true"]
    if shutil.which("pdsh"):
        runs["pdsh"] = ["pdsh", "-R", "ssh", "-f", str(n), "-w", ",".join(hosts), "true"]
    baseline = tool_cpu(["/bin/echo"]) * n  # the stub itself, n times over: not the tool's
    got = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, argv in runs.items():
            got[name].append(tool_cpu(argv, env))
    print(f"CPU a node, {n} nodes, ssh replaced by /bin/echo (median of {args.rounds}; the stub's own "
          f"{baseline / n * 1000:.2f} ms included)")
    print("| tool | CPU s in all | ms a node |")
    print("|---|---|---|")
    for name, vals in got.items():
        m = statistics.median(vals)
        print(f"| {name} | {m:.3f} | {m / n * 1000:.2f} |")
    print(f"\nForking {n} workers from a process with clstr's imports, each waiting for one message "
          f"(median of {args.rounds})")
    print("| how | parent ms a worker | worker ms | together |")
    print("|---|---|---|---|")
    for name, use_mp in (("multiprocessing fork Process", True), ("bare os.fork", False)):
        pairs = [fork_floor(n, use_mp) for _ in range(args.rounds)]
        p = statistics.median(x for x, _ in pairs) * 1000
        c = statistics.median(y for _, y in pairs) * 1000
        print(f"| {name} | {p:.2f} | {c:.2f} | {p + c:.2f} |")
    shutil.rmtree(stub, ignore_errors=True)


if __name__ == "__main__":
    main()
