"""W12: short jobs over the transports that are not ssh, against what people use there instead.

Local: N trivial jobs on this machine, 2 at a time: clstr `-n 2/:` against GNU parallel `-j 2`
and `xargs -P 2` (each job a `$SHELL -c`, as clstr and GNU parallel run it, and a `sh -c`; and
clstr with SHELL=/bin/sh beside it; and the floor, bench/loopfloor.py: clstr's job loop driven by
one process that does nothing else). Slurm: N trivial jobs on a 4-node allocation of a real
Slurm started here (tests/slurmnodes.py: slurmctld and four emulated slurmds on this host),
a slot a node: clstr `--slurm` (a job step a slot, the job loop down it) against GNU parallel's
Slurm pattern (`parallel -j 4 srun --exclusive -N1 -n1 ...`, its manual's) and one `srun` a job
in a row. Runs interleaved, medians with ranges; every run's output checked.

    python3 bench/transports.py                  # both, 2,000 jobs, 3 rounds
    python3 bench/transports.py --jobs 500 --repeat 1 local
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)

from bench import check, checked_run, compiled, interleaved, table, timed  # noqa: E402
import slurmnodes  # noqa: E402

PY = sys.executable


def local(njobs, repeat):
    jobs = "".join(f"echo job {i}\n" for i in range(njobs))
    expected = [f"job {i}" for i in range(njobs)]
    shell = os.environ.get("SHELL") or "/bin/sh"  # clstr runs a job as the user's $SHELL -c, as ssh would
    runs = [("clstr -n 2/:", [PY, "-m", "clstr", "-", "-n", "2/:"], jobs),
            (f"xargs -P 2 {os.path.basename(shell)} -c", ["xargs", "-P", "2", "-d", "\n", "-n", "1", shell, "-c"], jobs),
            ("xargs -P 2 sh -c", ["xargs", "-P", "2", "-d", "\n", "-n", "1", "sh", "-c"], jobs),
            ("clstr -n 2/:, SHELL=/bin/sh", ["env", "SHELL=/bin/sh", PY, "-m", "clstr", "-", "-n", "2/:"], jobs),
            # clstr's job loop with nothing of clstr's own around it: the floor of its design
            ("floor: the job loop, 2 sessions, one process", [PY, os.path.join(HERE, "loopfloor.py"), "2"], jobs)]
    if shutil.which("parallel"):
        runs.append(("GNU parallel -j 2", ["parallel", "--will-cite", "-j", "2"], jobs))

    rows = interleaved(runs, repeat, checked_run(expected))
    table(f"W12 local: {njobs} trivial jobs on this machine, 2 at a time, median of {repeat} interleaved runs", rows)
    return rows


def slurm(njobs, repeat, sequential_jobs):
    jobs = "".join(f"echo job {i}\n" for i in range(njobs))
    expected = [f"job {i}" for i in range(njobs)]
    with tempfile.TemporaryDirectory(prefix="clstr-w12-") as root:
        with slurmnodes.SlurmTestbed(root, nodes=4, cpus=1) as bed:
            job = bed.allocate(4)
            env = bed.env(job)
            srun = ["srun", f"--jobid={job}", "-N1", "-n1"]
            runs = [("clstr --slurm", [PY, "-m", "clstr", "--slurm", "-"], jobs, expected)]
            if shutil.which("parallel"):
                runs.append(("GNU parallel -j 4 srun --exclusive -N1 -n1",
                             ["parallel", "--will-cite", "-j", "4", *srun, "--exclusive", "sh", "-c"], jobs, expected))
            few = "".join(f"echo job {i}\n" for i in range(sequential_jobs))
            loop = f"while IFS= read -r j; do {' '.join(srun)} sh -c \"$j\" </dev/null; done"
            runs.append((f"one srun a job, in a row ({sequential_jobs} jobs)", ["sh", "-c", loop], few,
                         [f"job {i}" for i in range(sequential_jobs)]))

            def measure(run):
                _, argv, stdin, want = run
                r = timed(argv, stdin=stdin, env=env, timeout=1800)
                r["check"] = check(r["out"].splitlines(), want)
                return r
            rows = interleaved(runs, repeat, measure)
            bed.release(job)
    table(f"W12 Slurm: {njobs} trivial jobs on a 4-node allocation (a slot a node; emulated slurmds on this "
          f"host), median of {repeat} interleaved runs", rows)
    for name, r in rows:
        n = sequential_jobs if name.startswith("one srun") else njobs
        print(f"- {name}: {r['wall'] / n * 1000:.1f} ms a job")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", default=["local", "slurm"])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sequential-jobs", type=int, default=400,
                    help="jobs of the one-srun-a-job run (each a full srun, in a row)")
    args = ap.parse_args()
    compiled()
    print(f"clstr W12: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    if "local" in args.parts:
        local(args.jobs, args.repeat)
    if "slurm" in args.parts:
        why = slurmnodes.available()
        if why:
            print(f"W12 Slurm skipped: {why}")
        else:
            slurm(args.jobs, args.repeat, args.sequential_jobs)


if __name__ == "__main__":
    main()
