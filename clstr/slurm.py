"""Slurm, driven through its own commands: the nodes of the allocation clstr runs in, and the
sweep of the job steps a run started.

Inside an allocation (``salloc``, ``sbatch``), ``--slurm`` runs jobs on its nodes through Slurm
job steps, one a slot, each carrying the job loop (transports.Slurm: ``srun --jobid J --overlap
-N1 -n1 --nodelist NODE ... sh -c LOOP``), so that a job costs what it costs over ssh, not an
``srun`` a job. The allocation is read from the environment Slurm gives the shell inside it:
``SLURM_JOB_ID``, ``SLURM_JOB_NODELIST`` (``sn[1-4],gpu01``) and ``SLURM_JOB_CPUS_PER_NODE``
(``2(x3),1``), divided by ``SLURM_CPUS_PER_TASK`` where set: a slot for each task the
allocation's CPUs hold. ``--slots N`` says otherwise.

At the end of a run (and after Ctrl-C or --halt) the steps of the run, named
``clstr-<run token>``, are cancelled with ``scancel``: never the allocation itself.
"""
import re
import subprocess

from . import hostlist
from .errors import InputError

SWEEP_WAIT = 10  # seconds each of squeue and scancel may take at the end of a run
OUTSIDE = ("--slurm runs jobs inside a Slurm allocation (SLURM_JOB_ID is not set): "
           "run `salloc -N4` and then clstr --slurm in its shell, or sbatch a script that runs clstr --slurm")


def step_name(token):
    """The name of the run's job steps (srun --job-name): what the sweep looks for."""
    return f"clstr-{token}"


def cpus_per_node(text):
    """SLURM_JOB_CPUS_PER_NODE (``2(x3),1``) as a list of counts, one a node in order."""
    counts = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if m is None:
            raise InputError(f"SLURM_JOB_CPUS_PER_NODE={text!r}: expected counts such as '2(x3),1'")
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts


def inside(environ):
    """Whether ``environ`` is inside a Slurm allocation (its job and nodes are set)."""
    return bool((environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID"))
                and (environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")))


def allocation(environ):
    """(job id, ["N/node", ...]): the allocation of ``environ`` and a host pattern a node with a
    slot for each task its CPUs hold; InputError outside an allocation or for what cannot be read."""
    job = environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID")
    if not job:
        raise InputError(OUTSIDE)
    if not job.isdigit():
        raise InputError(f"SLURM_JOB_ID={job!r}: expected a job number")
    listed = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not listed:
        raise InputError(f"SLURM_JOB_NODELIST is not set in allocation {job}")
    nodes = hostlist.expand_all([listed])
    counts = cpus_per_node(environ.get("SLURM_JOB_CPUS_PER_NODE") or ",".join(["1"] * len(nodes)))
    if len(counts) != len(nodes):
        raise InputError(f"SLURM_JOB_CPUS_PER_NODE={environ.get('SLURM_JOB_CPUS_PER_NODE')!r} does not count "
                         f"the {len(nodes)} nodes of SLURM_JOB_NODELIST={listed!r}")
    per_task = environ.get("SLURM_CPUS_PER_TASK", "1")
    per_task = int(per_task) if per_task.isdigit() and int(per_task) > 0 else 1
    return job, [f"{max(1, cpus // per_task)}/{node}" for node, cpus in zip(nodes, counts)]


def sweep(job, token, env):
    """Cancel the steps of allocation ``job`` that the run ``token`` started and that still run
    (a step whose srun was killed lives on until Slurm notices); returns how many were asked."""
    try:
        r = subprocess.run(["squeue", "-h", "-s", "-j", str(job), "-o", "%i %j"], capture_output=True, text=True,
                           env=env, timeout=SWEEP_WAIT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return 0
    name = step_name(token)
    steps = [line.split()[0] for line in r.stdout.splitlines() if line.split()[1:] == [name]]
    if steps:
        try:
            subprocess.run(["scancel", *steps], capture_output=True, env=env, timeout=SWEEP_WAIT,
                           stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            pass
    return len(steps)
