"""The library interface: ``clstr.run(jobs, nodes, **options)`` returns a RunResult."""
import collections
import os
import shutil
import sys
import time

from . import checks, controldir, hostlist, transfer
from .checks import exported
from .errors import InputError
from .joblog import JobLog, ended_jobs, ended_on, log_command, read_joblog
from .output import Printer, StatusDisplay, byte_stream, check_file_target, check_output_dir
from .scheduler import Policy, Scheduler, interleave
from .templates import SLOT_MARK, shown
from .nodes import Sources, group_resolver
from .nodesource import NodeSource
from .ssh import SshConfig, base_argv, refused_flag as ssh_flag_refused, refused_option as ssh_option_refused
from .options import RunOptions
from .routes import Routes, mapping
from .result import RunResult
from .supervisor import Supervisor, stderr_log


def expand_nodes(nodes, exclude=(), groups=None):
    """Node patterns to a node name per slot, exclusions applied, slots interleaved over nodes.

    Raises InputError for an empty list.
    """
    ctx = hostlist.Context(group=groups)
    slots = hostlist.expand_all(nodes, ctx)
    if exclude:
        gone, regexes = hostlist.exclusions(exclude, ctx)
        # -x node3 also removes user@node3
        slots = [h for h in slots if h not in gone and h.rpartition("@")[2] not in gone
                 and not any(rx.search(h) for rx in regexes)]
    if not slots:
        raise InputError("no nodes to run on" + (" after exclusions" if exclude else ""))
    return interleave(slots)


def plan(jobs, nodes, on_each_node=None, exclude=(), resume_from=None, failed_too=True, groups=None):
    """Expand nodes and jobs into what a Scheduler takes.

    Returns (slots, job pairs (seq, command), pins or None, skipped count).
    ``groups``: name -> hosts, for ``@NAME`` in a node list.
    Raises InputError for an empty node list.
    """
    slots = expand_nodes(nodes, exclude, groups)
    if on_each_node is not None:
        # a node's job number is its place in the node list, the same in every run of that list
        numbered = [(i + 1, node) for i, node in enumerate(dict.fromkeys(slots))]
        skipped = 0
        if resume_from is not None:
            # the nodes where the command succeeded before: its job log names each one
            done = ended_on(resume_from, on_each_node, failed_too)
            kept = [(seq, n) for seq, n in numbered if n not in done]
            skipped, numbered = len(numbered) - len(kept), kept
        return slots, [(seq, on_each_node) for seq, _ in numbered], [n for _, n in numbered], skipped
    pairs = [(i + 1, cmd) for i, cmd in enumerate(jobs)]
    if resume_from is None:
        return slots, pairs, None, 0
    kept = skip_ended(pairs, ended_jobs(resume_from, failed_too))
    return slots, kept, None, len(pairs) - len(kept)


def skip_ended(pairs, ended):
    """The (seq, command) pairs a job log's ``ended`` rows [(seq, command)] leave to run.

    A row names its job by number and command, as GNU parallel's --resume does: the job of that
    number is skipped if its command is the same. Rows whose number names another command now
    (the job file changed) skip the first jobs left with their command, one a row.
    """
    rows = collections.Counter(ended)
    left = []
    for seq, cmd in pairs:
        key = (seq, log_command(shown(cmd)))
        if rows[key] > 0:
            rows[key] -= 1
        else:
            left.append((seq, cmd))
    by_command = collections.Counter()
    mine = {(seq, log_command(shown(cmd))) for seq, cmd in pairs}
    for (seq, cmd), n in rows.items():
        if n > 0 and (seq, cmd) not in mine:
            by_command[cmd] += n
    kept = []
    for seq, cmd in left:
        key = log_command(shown(cmd))
        if by_command[key] > 0:
            by_command[key] -= 1
        else:
            kept.append((seq, cmd))
    return kept


class Run:
    """A run, planned and checked, not started: ``describe()`` it or ``execute()`` it."""

    def __init__(self, jobs, nodes, *, on_each_node=None, exclude=(), ssh="ssh", ssh_options=(),
                 connect_timeout=10.0, alive_interval=5, alive_count=3, remote_cleanup=True, pipeline=True,
                 job_failures="node", max_attempts=3, retries=0, max_node_uses=None, max_nodes=None,
                 max_connecting=32, timeout=None, idle_timeout=None, reprobe=30.0, reprobe_for=900.0,
                 quarantine=3, timeout_percent=None, multiplex=True, sessions_per_connection=8,
                 ssh_delay=0.0, active_nodes=None, state=None,
                 joblog=None, resume=False, resume_failed=False, stdout=None, stderr=None, tag=False,
                 tag_job=False, group=False, profiles=(),
                 output_dir=None, gather=False, status=False, bar=False, verbose=False, log=None, node_source=None,
                 env=(), halt=None, inputs=None, transferfile=(), returnfile=(), cleanup=False, basefile=(),
                 workdir=None, persist=None, gateways=None, gateway_python="python3", gateway_fallback="direct"):
        jobs = checks.strings("jobs", jobs, "shell commands", mark=SLOT_MARK)
        nodes = checks.strings("nodes", nodes, "host patterns")
        exclude = checks.strings("exclude", exclude, "host patterns")
        ssh_options = checks.strings("ssh_options", ssh_options, "ssh options")
        if on_each_node is not None:
            on_each_node = checks.strings("on_each_node", [on_each_node], "shell command")[0]
        if not isinstance(ssh, str):
            raise TypeError(f"ssh must be a string, not {type(ssh).__name__}")
        v = {name: checks.check(name, value) for name, value in dict(
            timeout=timeout, idle_timeout=idle_timeout, timeout_percent=timeout_percent, reprobe=reprobe,
            reprobe_for=reprobe_for, quarantine=quarantine,
            connect_timeout=connect_timeout, ssh_delay=ssh_delay,
            max_nodes=max_nodes, max_connecting=max_connecting,
            max_node_uses=max_node_uses, max_attempts=max_attempts, retries=retries, alive_interval=alive_interval,
            alive_count=alive_count, sessions_per_connection=sessions_per_connection, job_failures=job_failures,
            remote_cleanup=remote_cleanup, pipeline=pipeline, multiplex=multiplex, resume=resume,
            resume_failed=resume_failed,
            tag=tag, tag_job=tag_job, group=group, gather=gather, status=status, bar=bar, verbose=verbose,
            active_nodes=active_nodes, joblog=joblog, output_dir=output_dir, state=state, persist=persist).items()}
        timeout, connect_timeout, ssh_delay = v["timeout"], v["connect_timeout"], v["ssh_delay"]
        max_nodes, max_node_uses = v["max_nodes"], v["max_node_uses"]
        active_nodes, joblog, output_dir = v["active_nodes"], v["joblog"], v["output_dir"]  # paths as str
        stdout, stderr = checks.stream("stdout", stdout), checks.stream("stderr", stderr)
        for stream in (stdout, stderr):
            if stream:
                byte_stream(stream)  # a stream that takes neither bytes nor text: TypeError now
        if resume and resume_failed:
            raise InputError("give --resume or --resume-failed, not both")
        if (resume or resume_failed) and not joblog:
            raise InputError(f"{'--resume' if resume else '--resume-failed'} needs --joblog FILE")
        if gather and on_each_node is None:
            raise InputError("--gather goes with --on-each-node")
        profiles = checks.strings("profiles", profiles, "profile files")
        self.slots, self.pairs, pins, self.skipped = plan(list(jobs), list(nodes), on_each_node, exclude,
                                                          joblog if resume or resume_failed else None,
                                                          failed_too=not resume_failed,
                                                          groups=group_resolver(profiles))
        self.notes = []  # lines said when the run starts
        if on_each_node is not None and (resume or resume_failed) and not self.skipped:
            logged = {cmd for _, _, _, cmd in read_joblog(joblog)}
            if logged and log_command(on_each_node) not in logged:
                self.notes.append(f"{'--resume' if resume else '--resume-failed'}: {joblog} has no row of this "
                                  "command (it changed?): it runs on every node")
        live = None
        if node_source is not None and on_each_node is None and node_source.files:
            # a live node list: its files are read again when they change (patterns, as ``nodes``)
            # profiles (@NAME) are looked up afresh each time: their files are among those watched
            live = NodeSource(node_source.files,
                              lambda: expand_nodes(checks.strings("nodes", node_source.read(), "host patterns"),
                                                   exclude, group_resolver(profiles, regular_only=True)))
        if v["persist"] is not None and not multiplex:
            raise InputError("--persist keeps the shared connections: not with --no-multiplex")
        if v["persist"] is not None:
            controldir.persist_dir()  # made, or refused in one line, before anything runs
        if on_each_node is not None:
            # one job per node: a shared connection would only add a hop, unless it is to be kept
            multiplex = v["persist"] is not None
            pipeline = False  # and a job loop, a round trip
        self.policy = Policy(job_failures=job_failures, max_attempts=max_attempts, retries=retries,
                             max_node_uses=max_node_uses, max_running=max_nodes, shared_connections=multiplex,
                             max_connecting=v["max_connecting"], reprobe=v["reprobe"] or None,
                             reprobe_for=v["reprobe_for"], sessions_per_connection=sessions_per_connection,
                             quarantine=v["quarantine"], straggler_percent=v["timeout_percent"],
                             halt=checks.halt(halt))
        for name, value in (("transferfile", transferfile), ("returnfile", returnfile), ("basefile", basefile)):
            checks.strings(name, value, "paths or path templates")
        if workdir is not None and (not isinstance(workdir, str) or not workdir or "\n" in workdir):
            raise InputError(f"--workdir {workdir!r}: expected a directory, '.' or '...'")
        if not isinstance(cleanup, bool):
            raise TypeError(f"cleanup must be True or False, not {type(cleanup).__name__}")
        mark = os.urandom(12).hex()
        self.files, self.job_files = transfer.plan(
            self.pairs, None if inputs is None else {seq: tuple(inputs[seq - 1]) for seq, _ in self.pairs},
            list(transferfile), list(returnfile), list(basefile), workdir, cleanup, mark[:12])
        env = exported(checks.strings("env", env, "variable names or globs"), os.environ)
        if env and not remote_cleanup:
            raise InputError("--env needs the remote wrapper, which exports the variables: not with --no-remote-cleanup")
        self.ssh = SshConfig.from_strings(ssh, ssh_options, connect_timeout=connect_timeout,
                                          alive_interval=alive_interval, alive_count=alive_count,
                                          remote_cleanup=remote_cleanup, pipeline=v["pipeline"] and pipeline,
                                          mark=mark, env=env, workdir=self.files.workdir if self.files else None)
        if not self.ssh.command or shutil.which(self.ssh.command[0]) is None:
            raise InputError(f"ssh command not found: {ssh!r} (see --ssh)")
        refused = ssh_flag_refused(self.ssh.command)
        if refused is not None:
            raise InputError(f"--ssh {ssh!r}: ssh {refused[0]} {refused[1]}: leave it out")
        refused = ssh_option_refused(self.ssh.options)
        if refused is not None:
            raise InputError(f"-O {refused[0]!r}: ssh then {refused[1]}: leave it out")
        self.routes = _routes(gateways, gateway_python, gateway_fallback)
        self.options = RunOptions(ssh=self.ssh, policy=self.policy, timeout=timeout,
                                  idle_timeout=v["idle_timeout"],
                                  multiplex=multiplex,
                                  ssh_delay=ssh_delay, active_nodes=active_nodes, joblog=joblog, verbose=verbose,
                                  state=v["state"], node_source=live, files=self.files, job_files=self.job_files,
                                  persist=v["persist"], one_job_slots=on_each_node is not None,
                                  routes=self.routes or None, gateway_python=gateway_python,
                                  gateway_fallback=gateway_fallback)
        self.scheduler = Scheduler(self.pairs, self.slots, self.policy, pinned=pins)
        self.output = dict(stdout=stdout, stderr=stderr, tag=tag, tag_job=tag_job, group=group,
                           output_dir=output_dir, gather=gather, status=status, bar=bar)
        self.log = log

    def describe(self, limit=5):
        """The plan as text lines: counts, slots, the first ``limit`` jobs (None: all), the options,
        the ssh command."""
        nodes = list(dict.fromkeys(self.slots))
        p, o = self.policy, self.options
        lines = [
            f"nodes: {len(nodes)} ({hostlist.fold(nodes)}), slots: {len(self.slots)}",
            f"jobs: {len(self.pairs)}" + (f" ({self.skipped} skipped, done in the job log)" if self.skipped else ""),
        ]
        for seq, cmd in self.pairs[:limit]:
            lines.append(f"  job {seq}: {shown(cmd)}")
        if limit is not None and len(self.pairs) > limit:
            lines.append(f"  ... and {len(self.pairs) - limit} more")
        lines += [
            f"failures: --job-failures {p.job_failures}, --max-attempts {p.max_attempts}, --retries {p.retries}"
            + (f", --quarantine {p.quarantine or 0}" if p.job_failures == "job" else ""),
            f"limits: --max-nodes {p.max_running or 'all'}, --max-node-uses {p.max_node_uses or 'none'}, "
            f"--max-connecting {p.max_connecting or 'all'}, "
            f"--timeout {o.timeout or 'none'}" + (f", --idle-timeout {o.idle_timeout}" if o.idle_timeout else "")
            + (f", --timeout {p.straggler_percent:g}% of the median" if p.straggler_percent else ""),
            "retired nodes: " + (f"probed again after {p.reprobe:g} s, doubling to {p.reprobe_max:g} s; with "
                                 f"every node out, waited for {p.reprobe_for:g} s" if p.reprobe
                                 else "stay out (--reprobe 0)"),
            "connections: " + (f"shared, {p.sessions_per_connection} slots a connection" if o.multiplex
                               else "one a job") + f", remote cleanup {'on' if self.ssh.remote_cleanup else 'off'}"
            + (", jobs pipelined (one session a slot)" if self.ssh.pipeline and self.ssh.remote_cleanup
               else ", one session a job"),
            "ssh: " + " ".join(base_argv(self.ssh)) + " -- NODE COMMAND",
        ]
        if self.routes:
            lines.append("gateways (clstr runs on each over ssh; --gateway-fallback "
                         f"{o.gateway_fallback}):")
            lines += self.routes.folded(self.routes.plan(nodes), nodes)
        if o.joblog:
            lines.append(f"job log: {o.joblog}")
        return lines

    def execute(self):
        """Run every job; returns the RunResult."""
        for note in self.notes:
            (self.log or stderr_log())(note)
        if not self.pairs:
            return RunResult(jobs=[], retired_nodes={}, skipped=self.skipped)
        o = self.output
        if o["output_dir"] is not None:
            check_output_dir(o["output_dir"], [seq for seq, _ in self.pairs])
        if self.options.active_nodes:
            check_file_target(self.options.active_nodes, "--active-nodes file")
        if self.options.state:
            check_file_target(self.options.state, "--state file")
        joblog = JobLog(self.options.joblog) if self.options.joblog else None
        out = None if o["stdout"] is False else byte_stream(o["stdout"] or sys.stdout)
        err = None if o["stderr"] is False else byte_stream(o["stderr"] or sys.stderr)
        display = StatusDisplay(sys.stderr, time.monotonic, bar=o["bar"]) if (o["status"] or o["bar"]) else None
        printer = Printer(out, err, tag=o["tag"], tag_job=o["tag_job"], group=o["group"],
                          output_dir=o["output_dir"], gather=o["gather"], status=display)
        result = Supervisor(self.scheduler, self.options, printer, status=display,
                            log=self.log or stderr_log(), joblog=joblog).run()
        result.skipped = self.skipped
        return result


def _routes(gateways, python, fallback):
    """The run's routes.Routes (empty without gateways), its arguments checked."""
    if fallback not in ("direct", "none"):
        raise InputError(f"gateway_fallback {fallback!r}: expected 'direct' or 'none'")
    if not isinstance(python, str) or not python.strip() or "\n" in python:
        raise InputError(f"gateway_python {python!r}: expected a command such as python3")
    if gateways is None or isinstance(gateways, Routes):
        return gateways or Routes()
    if not isinstance(gateways, dict):
        raise TypeError(f"gateways must be a dict of gateway -> node patterns, not {type(gateways).__name__}")
    return Routes(mapping(gateways, "gateways") if gateways else {})


def run(jobs, nodes=(), **options):
    """Run shell commands on nodes over ssh; returns a RunResult.

    ``jobs``: shell commands. ``nodes``: host patterns (``node[01-12]``,
    ``4/host``, ``user@host``, ``^FILE``, ``@PROFILE``); a host listed N times has N slots.
    ``node_files``: node files (as ``-N``); ``profile``: a profile's name, or several (as ``-p``):
    their nodes join the run's, and their settings (ssh, ssh_options, connect_timeout, persist,
    workdir, env, basefile, gateways) apply where the call gives none of its own.
    ``stdout``/``stderr``: where job output goes (default: this process's):
    a binary stream gets the jobs' bytes, a text stream (``io.StringIO``)
    the bytes decoded as UTF-8 (others replaced); ``False`` discards it. Every job of the result ends
    ``succeeded``, ``failed`` or ``not run``, with a reason. The keyword
    options are those of the command line (see ``Run``).

    >>> r = clstr.run(["hostname"], ["node[1-4]"])        # doctest: +SKIP
    >>> [j.node for j in r.succeeded]                       # doctest: +SKIP
    """
    node_files = options.pop("node_files", ())
    profile = options.pop("profile", ())
    if node_files or profile:
        nodes, options = from_sources(nodes, node_files, profile, options)
    return Run(jobs, nodes, **options).execute()


def from_sources(nodes, node_files, profile, options):
    """(nodes, options) of a call that names node files or profiles (nodes.Sources): the host
    patterns of all, and the options with the profiles' settings where the call gave none."""
    profile = [profile] if isinstance(profile, str) else profile
    src = Sources(tuple(checks.strings("nodes", nodes, "host patterns")),
                  tuple(checks.strings("node_files", node_files, "node file paths")),
                  tuple(checks.strings("profile", profile, "profile names")),
                  tuple(checks.strings("profiles", options.get("profiles", ()), "profile files")))
    found = src.nodes()
    s = src.settings(workdir=options.get("workdir"))
    options = dict(options)
    for key in ("ssh", "connect_timeout", "persist", "workdir"):
        if getattr(s, key) is not None and options.get(key) is None:
            options[key] = getattr(s, key)
    for key in ("ssh_options", "env", "basefile"):
        given = list(checks.strings(key, options.get(key, ()), "strings"))
        options[key] = given + [v for v in getattr(s, key) if v not in given]
    if s.gateways:
        gateways = dict(options.get("gateways") or {})
        for gw, reach in s.gateways.items():
            gateways.setdefault(gw, []).extend([reach] if isinstance(reach, str) else reach)
        options["gateways"] = gateways
    return found, options
