"""The library interface: ``clstr.run(jobs, nodes, **options)`` returns a RunResult."""
import os
import sys
import time

from . import hostlist
from .errors import InputError
from .output import Printer, StatusDisplay, read_succeeded
from .scheduler import Policy, Scheduler, interleave
from .ssh import SshConfig
from .supervisor import RunOptions, RunResult, Supervisor, stderr_log


def _binary(stream):
    return getattr(stream, "buffer", stream)


def plan(jobs, nodes, on_each_node=None, exclude=(), resume_from=None):
    """Expand nodes and jobs into what a Scheduler takes.

    Returns (slots, job pairs (seq, command), pins or None, skipped count).
    Raises InputError for an empty node list.
    """
    slots = hostlist.expand_all(nodes)
    if exclude:
        gone = set(hostlist.expand_all(exclude))
        # -x node3 also removes user@node3
        slots = [h for h in slots if h not in gone and h.rpartition("@")[2] not in gone]
    if not slots:
        raise InputError("no nodes to run on" + (" after exclusions" if exclude else ""))
    slots = interleave(slots)
    if on_each_node is not None:
        distinct = list(dict.fromkeys(slots))
        return slots, [(i + 1, on_each_node) for i in range(len(distinct))], distinct, 0
    pairs = [(i + 1, cmd) for i, cmd in enumerate(jobs)]
    skipped = 0
    if resume_from is not None:
        done = read_succeeded(resume_from)
        kept = []
        for seq, cmd in pairs:
            if done[cmd] > 0:
                done[cmd] -= 1
                skipped += 1
            else:
                kept.append((seq, cmd))
        pairs = kept
    return slots, pairs, None, skipped


def run(jobs, nodes, *, on_each_node=None, exclude=(), ssh="ssh", ssh_options=(), connect_timeout=10.0,
        alive_interval=5, alive_count=3, remote_cleanup=True, job_failures="node", max_attempts=3, retries=0, max_node_uses=None,
        max_nodes=None, timeout=None, multiplex=True, sessions_per_connection=8, ssh_delay=0.0, active_nodes=None, joblog=None,
        resume=False, stdout=None, stderr=None, tag=False, tag_job=False, group=False, output_dir=None,
        status=False, verbose=False, log=None):
    """Run shell commands on nodes over ssh; returns a RunResult.

    ``jobs``: shell commands. ``nodes``: host patterns (``node[01-12]``,
    ``4/host``, ``user@host``); a host listed N times has N slots.
    ``stdout``/``stderr``: binary or text streams for job output (default:
    this process's), or ``False`` to discard. Every job of the result ends
    ``succeeded``, ``failed`` or ``not run``, with a reason.

    >>> r = clstr.run(["hostname"], ["node[1-4]"])        # doctest: +SKIP
    >>> [j.node for j in r.succeeded]                       # doctest: +SKIP
    """
    jobs = list(jobs)
    if resume and not joblog:
        raise InputError("--resume needs --joblog FILE")
    slots, pairs, pins, skipped = plan(jobs, list(nodes), on_each_node, exclude,
                                       joblog if resume else None)
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
    policy = Policy(job_failures=job_failures, max_attempts=max_attempts, retries=retries,
                    max_node_uses=max_node_uses, max_running=max_nodes, gate_on_connect=multiplex,
                    sessions_per_connection=sessions_per_connection)
    cfg = SshConfig.from_strings(ssh, ssh_options, connect_timeout=connect_timeout,
                                 alive_interval=alive_interval, alive_count=alive_count,
                                 remote_cleanup=remote_cleanup)
    options = RunOptions(ssh=cfg, policy=policy, timeout=timeout, multiplex=multiplex, ssh_delay=ssh_delay,
                         active_nodes=active_nodes, joblog=joblog, verbose=verbose)
    sched = Scheduler(pairs, slots, policy, pinned=pins)
    if not pairs:
        return RunResult(jobs=[], retired_nodes={}, skipped=skipped)
    out = None if stdout is False else _binary(stdout or sys.stdout)
    err = None if stderr is False else _binary(stderr or sys.stderr)
    display = StatusDisplay(sys.stderr, time.monotonic) if status else None
    printer = Printer(out, err, tag=tag, tag_job=tag_job, group=group, output_dir=output_dir, status=display)
    result = Supervisor(sched, options, printer, status=display, log=log or stderr_log()).run()
    result.skipped = skipped
    return result
