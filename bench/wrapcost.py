#!/usr/bin/env python3
"""What clstr's remote wrapper (one ssh session a job: -E, --no-pipeline) costs a node a job.

No ssh: each login shell runs the wrapper's line as sshd would run it (``SHELL -c LINE``,
stdin a pipe held open as clstr's ssh holds it, closed once the wrapper has ended), against
the same shell running the bare job (``SHELL -c JOB``, what plain ``ssh node JOB`` runs).
This process is made a subreaper, so that the wrapper's watcher, which leaves its parent,
is reaped here and its CPU counted (RUSAGE_CHILDREN). Shells run in turns, many times each.

    python3 bench/wrapcost.py [--runs 300] [--rounds 3] [--job 'echo hi']
"""
import argparse
import ctypes
import os
import resource
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from clstr import ssh  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def reap_all():
    """Wait for every child and orphan left to us (the watchers end once stdin closes)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def run(shell, line, runs, token):
    """CPU ms a run of ``shell -c line`` and what it left, and the last run's (stdout, marks)."""
    env = dict(os.environ, SHELL=shell)
    before = cpu_children()
    for _ in range(runs):
        r, w = os.pipe()
        p = subprocess.Popen([shell, "-c", line], stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        os.close(r)
        out, err = p.communicate()
        os.close(w)  # what clstr's ssh does when the session ends: the watcher wakes and leaves
        reap_all()
    marks = ssh.Wrapper(token).strip(err)[1] if token else []
    return (cpu_children() - before) / runs * 1000, out, marks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--job", default="echo hi")
    args = ap.parse_args()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("wrapcost: cannot become a subreaper: the watchers' CPU would not be counted")
    token = "t0k3n" * 4
    line = ssh.Wrapper(token).line(args.job)[0]
    shells = [s for s in ("bash", "dash", "zsh") if shutil.which(s)]
    got = {s: ([], []) for s in shells}
    for _ in range(args.rounds):
        for name in shells:
            shell = shutil.which(name)
            bare, out_bare, _ = run(shell, args.job, args.runs, None)
            wrapped, out, marks = run(shell, line, args.runs, token)
            if out != out_bare or [m[0] for m in marks] != [ssh.MARK_START, ssh.MARK_END]:
                sys.exit(f"wrapcost: {name}: the wrapped job said {out!r} with marks {marks}, "
                         f"the bare one {out_bare!r}")
            got[name][0].append(bare)
            got[name][1].append(wrapped)
    print(f"CPU a job on the node, `{args.job}`, median of {args.rounds} rounds of {args.runs} runs")
    print("| login shell | plain ssh's (SHELL -c JOB) ms | clstr's wrapper ms | the wrapper's own ms |")
    print("|---|---|---|---|")
    for name, (bare, wrapped) in got.items():
        b, w = statistics.median(bare), statistics.median(wrapped)
        print(f"| {name} | {b:.2f} | {w:.2f} | {w - b:.2f} |")


if __name__ == "__main__":
    main()
