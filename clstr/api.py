"""The library interface: ``clstr.run(jobs, nodes, **options)`` returns a RunResult."""
import collections
import dataclasses
import os
import shutil
import subprocess
import sys
import time

from . import askpass, checks, controldir, hostlist, ssh, slurm, sudo, transfer, transports
from .checks import exported
from .errors import InputError
from .joblog import JobLog, ended_jobs, ended_on, log_command, read_joblog
from .output import Printer, StatusDisplay, byte_stream, check_file_target, check_output_dir
from .scheduler import Policy, Scheduler, interleave
from .templates import MARKS, shown, with_host
from .nodes import Sources, group_resolver
from .nodesource import NodeSource
from .ssh import SshConfig, base_argv, refused_flag as ssh_flag_refused, refused_option as ssh_option_refused
from .options import CONNECT_TIMEOUT, Options, RunOptions
from .routes import Routes, mapping
from .result import RunResult
from .supervisor import Supervisor, stderr_log


def expand_nodes(nodes, exclude=(), groups=None, per_node=None):
    """Node patterns to a node name per slot, exclusions applied, slots interleaved over nodes;
    ``per_node`` (--slots): every node that many slots, however it was listed.

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
    if per_node:
        slots = [node for node in dict.fromkeys(slots) for _ in range(per_node)]
    return interleave(slots)


def plan(jobs, nodes, on_each_node=None, exclude=(), resume_from=None, failed_too=True, groups=None,
         per_node=None):
    """Expand nodes and jobs into what a Scheduler takes.

    Returns (slots, job pairs (seq, command), pins or None, skipped count).
    ``groups``: name -> hosts, for ``@NAME`` in a node list.
    Raises InputError for an empty node list.
    """
    slots = expand_nodes(nodes, exclude, groups, per_node)
    if on_each_node is not None:
        # a node's job number is its place in the node list, the same in every run of that list
        numbered = [(i + 1, node) for i, node in enumerate(dict.fromkeys(slots))]
        skipped = 0
        if resume_from is not None:
            # the nodes where the command succeeded before: its job log names each one
            done = ended_on(resume_from, shown(on_each_node), failed_too)
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

    def __init__(self, jobs, nodes, options=None, **given):
        """``options``: an Options; keyword arguments (Options' names) add to or change it."""
        if options is not None and not isinstance(options, Options):
            raise TypeError(f"options must be a clstr.options.Options, not {type(options).__name__}")
        o = Options.of(given) if options is None else options.but(**given)
        self.given = o
        jobs = [with_host(j) for j in checks.strings("jobs", jobs, "shell commands", mark=MARKS)]
        nodes = checks.strings("nodes", nodes, "host patterns")
        exclude = checks.strings("exclude", o.exclude, "host patterns")
        on_each_node = o.on_each_node
        copying = copy_plan(o)
        if copying:
            if on_each_node is not None or jobs:
                raise InputError("--copy and --rcopy copy, on every node: give no jobs and no -E with them")
            on_each_node = ": copy"  # the files move around a job that does nothing (sh's :), one a node
        if on_each_node is not None:
            on_each_node = with_host(checks.strings("on_each_node", [on_each_node], "shell command")[0])
        v = _checked(o)
        stdout, stderr = _streams(o)
        resume, resume_failed, joblog = _resume(v)
        if v["gather"] and on_each_node is None:
            raise InputError("--gather goes with --on-each-node")
        profiles = checks.strings("profiles", o.profiles, "profile files")
        inventories = checks.strings("inventories", o.inventories, "inventory files")
        slurm_job = None
        if v["slurm"]:
            if o.connect is not None:
                raise InputError("--slurm reaches nodes by job steps, --connect by a command: give one")
            slurm_job, allocated = slurm.allocation(os.environ)
            nodes = nodes or allocated  # the allocation's nodes, unless the call names some of them
        self.slots, self.pairs, pins, self.skipped = plan(list(jobs), list(nodes), on_each_node, exclude,
                                                          joblog if resume or resume_failed else None,
                                                          failed_too=not resume_failed,
                                                          groups=group_resolver(profiles, inventories=inventories),
                                                          per_node=v["slots"])
        # lines said when the run starts
        self.notes = _resume_note(on_each_node, resume, resume_failed, joblog) if not self.skipped else []
        live = _live(o.node_source, on_each_node, exclude, profiles, v["slots"], inventories)
        multiplex, pipeline = _sessions(v, on_each_node)
        self.policy = _policy(o, v, copying, multiplex)
        mark = os.urandom(12).hex()
        self.files, self.job_files = _files(o, self.pairs, mark[:12], pins)
        if copying:
            self.files, self.job_files = copying(self.pairs, pins)
        self.ssh = _ssh_config(o, v, pipeline, mark, self.files, self.slots, slurm_job,
                               _targets(inventories, self.slots), live=live is not None)
        self.routes = _routes(o.gateways, o.gateway_python, o.gateway_fallback)
        if self.routes and slurm_job:
            # its job steps start from the allocation's own controller: a gateway has nothing to add
            raise InputError("--slurm reaches nodes by Slurm's own job steps: not with gateways")
        self.options = RunOptions(ssh=self.ssh, policy=self.policy, timeout=v["timeout"],
                                  idle_timeout=v["idle_timeout"], multiplex=multiplex,
                                  ssh_delay=v["ssh_delay"], active_nodes=v["active_nodes"], joblog=joblog,
                                  verbose=v["verbose"], state=v["state"], node_source=live, files=self.files,
                                  job_files=self.job_files, persist=v["persist"],
                                  one_job_slots=on_each_node is not None, routes=self.routes or None,
                                  gateway_python=o.gateway_python, gateway_fallback=o.gateway_fallback,
                                  ask_sudo=_ask_sudo(o) if self.ssh.sudo is not None else None)
        self.scheduler = Scheduler(self.pairs, self.slots, self.policy, pinned=pins)
        self.output = dict(stdout=stdout, stderr=stderr, tag=v["tag"], tag_job=v["tag_job"], group=v["group"],
                           output_dir=v["output_dir"], gather=v["gather"], status=v["status"], bar=v["bar"])
        self.log = o.log

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
        ]
        reach = {transports.of(self.ssh, node).name: transports.of(self.ssh, node) for node in nodes}
        sessions = (f"remote cleanup {'on' if self.ssh.remote_cleanup else 'off'}"
                    + (", jobs pipelined (one session a slot)" if self.ssh.pipeline and self.ssh.remote_cleanup
                       else ", one session a job"))
        if "ssh" in reach:
            lines += ["connections: " + (f"shared, {p.sessions_per_connection} slots a connection" if o.multiplex
                                         else "one a job") + ", " + sessions,
                      "ssh: " + " ".join(base_argv(self.ssh)) + " -- NODE COMMAND"]
        else:
            lines.append("sessions: " + sessions)
        if "local" in reach:
            lines.append(f"':' (this machine): {reach['local'].shell} -c COMMAND")
        for name in ("slurm", "command"):
            if name in reach:
                lines.append(f"{name}: " + " ".join(transports.of(self.ssh, "NODE").words) + " sh -c COMMAND")
        if self.ssh.sudo is not None:
            lines.append(f"sudo: every job as {self.ssh.sudo} (its password asked once, here, if a node's sudo asks)")
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




def _streams(o):
    """The run's stdout and stderr (None: the terminal's), checked now: a stream that takes neither
    bytes nor text is a TypeError before anything runs."""
    stdout, stderr = checks.stream("stdout", o.stdout), checks.stream("stderr", o.stderr)
    for stream in (stdout, stderr):
        if stream:
            byte_stream(stream)
    return stdout, stderr


def _resume(v):
    """(resume, resume_failed, joblog) of the checked options ``v``, refused where they disagree."""
    resume, resume_failed, joblog = v["resume"], v["resume_failed"], v["joblog"]
    if resume and resume_failed:
        raise InputError("give --resume or --resume-failed, not both")
    if (resume or resume_failed) and not joblog:
        raise InputError(f"{'--resume' if resume else '--resume-failed'} needs --joblog FILE")
    return resume, resume_failed, joblog


def _resume_note(on_each_node, resume, resume_failed, joblog):
    """[a line to say] where -E's command is resumed from a job log with no row of it."""
    if on_each_node is None or not (resume or resume_failed):
        return []
    logged = {cmd for _, _, _, cmd in read_joblog(joblog)}
    if logged and log_command(shown(on_each_node)) not in logged:
        return [f"{'--resume' if resume else '--resume-failed'}: {joblog} has no row of this command (it "
                "changed?): it runs on every node"]
    return []


def _sessions(v, on_each_node):
    """(multiplex, pipeline): whether slots share connections and keep a job loop."""
    multiplex, pipeline = v["multiplex"], v["pipeline"]
    if v["persist"] is not None and not multiplex:
        raise InputError("--persist keeps the shared connections: not with --no-multiplex")
    if v["persist"] is not None:
        controldir.persist_dir()  # made, or refused in one line, before anything runs
    if on_each_node is not None:
        # one job per node: a shared connection would only add a hop, unless it is to be kept
        multiplex = v["persist"] is not None
        pipeline = False  # and a job loop, a round trip
    return multiplex, pipeline


def _policy(o, v, copying, multiplex):
    """The scheduler's Policy of the checked options ``v``."""
    # a copy that fails (a file missing on the node) is that copy's failure: its node is not broken
    return Policy(job_failures="job" if copying else v["job_failures"], max_attempts=v["max_attempts"],
                  retries=v["retries"], max_node_uses=v["max_node_uses"], max_running=v["max_nodes"],
                  shared_connections=multiplex, max_connecting=v["max_connecting"],
                  reprobe=v["reprobe"] or None, reprobe_for=v["reprobe_for"],
                  sessions_per_connection=v["sessions_per_connection"], quarantine=v["quarantine"],
                  straggler_percent=v["timeout_percent"], halt=checks.halt(o.halt))

def _checked(o):
    """The options checks.check knows, each checked (InputError or TypeError) and as the run takes it."""
    known = set(checks.OPTIONS) | set(checks.FLAGS) | set(checks.PATHS)
    if o.connect_timeout is None:
        o = o.but(connect_timeout=CONNECT_TIMEOUT)
    return {name: checks.check(name, getattr(o, name)) for name in Options.names() if name in known}


def _live(node_source, on_each_node, exclude, profiles, per_node, inventories=()):
    """A live node list (nodesource.NodeSource) from the node files of ``node_source``, or None."""
    if node_source is None or on_each_node is not None or not node_source.files:
        return None
    # its files are read again when they change (patterns, as ``nodes``); profiles (@NAME) are
    # looked up afresh each time: their files are among those watched
    return NodeSource(node_source.files,
                      lambda: expand_nodes(checks.strings("nodes", node_source.read(), "host patterns"),
                                           exclude, group_resolver(profiles, regular_only=True,
                                                                   inventories=inventories), per_node))


def copy_plan(o):
    """--copy/--rcopy: None, or a function of the run's (seq, command) pairs and pins (the node of
    each job) that gives (Files, {seq: JobFiles}): every file of the --copy paths sent to each node
    under --dest, each --rcopy path brought back from each node as DEST/NAME.NODE here."""
    copy = checks.strings("copy", o.copy, "paths")
    rcopy = checks.strings("rcopy", o.rcopy, "paths")
    if not isinstance(o.preserve, bool):
        raise TypeError(f"preserve must be True or False, not {type(o.preserve).__name__}")
    if not copy and not rcopy:
        if o.dest is not None or o.preserve:
            raise InputError(f"{'--dest' if o.dest is not None else '--preserve'} goes with --copy or --rcopy")
        return None
    if o.dest is not None and (not isinstance(o.dest, str) or not o.dest or "\n" in o.dest):
        raise InputError(f"--dest {o.dest!r}: expected a directory")
    if o.transferfile or o.returnfile or o.basefile or o.workdir or o.cleanup:
        raise InputError("--copy and --rcopy move files on their own: not with --tf, --return, --bf, --wd, --cleanup")
    sends = tuple(transfer.Send(local, remote) for local, remote in transfer.copied(copy, o.dest))
    for path in rcopy:
        transfer.check_path(path, "--rcopy")

    def files(pairs, pins):
        per_job = {}
        for (seq, _), node in zip(pairs, pins):
            # a directory (``logs`` or ``logs/``) comes back whole, as DEST/logs.NODE
            returns = tuple(transfer.Return(path, os.path.join(o.dest or os.path.dirname(path.rstrip("/")) or ".",
                                                              f"{os.path.basename(path.rstrip('/'))}.{node}"))
                            for path in rcopy)
            per_job[seq] = transfer.JobFiles(sends, returns)
        # for rsync, where both ends have it: the paths as given, by the directory they go to there
        groups = ((tuple(copy), o.dest),) if o.dest is not None and copy else tuple(
            ((path,), os.path.dirname(os.path.abspath(path.rstrip("/")))) for path in copy)
        sent = sum(os.path.getsize(s.local) for s in sends)
        return transfer.Files(only=True, copy=groups, copy_bytes=sent, preserve=o.preserve), per_job
    return files


def _files(o, pairs, token, pins=()):
    """(transfer.Files or None, each job's transfer.JobFiles) of the options' file templates."""
    for name in ("transferfile", "returnfile", "basefile"):
        checks.strings(name, getattr(o, name), "paths or path templates")
    if o.workdir is not None and (not isinstance(o.workdir, str) or not o.workdir or "\n" in o.workdir):
        raise InputError(f"--workdir {o.workdir!r}: expected a directory, '.' or '...'")
    if not isinstance(o.cleanup, bool):
        raise TypeError(f"cleanup must be True or False, not {type(o.cleanup).__name__}")
    inputs = None if o.inputs is None else {seq: tuple(o.inputs[seq - 1]) for seq, _ in pairs}
    pinned = {seq: node for (seq, _), node in zip(pairs, pins or ()) if node is not None}
    return transfer.plan(pairs, inputs, list(o.transferfile), list(o.returnfile), list(o.basefile), o.workdir,
                         o.cleanup, token, pinned)


def _targets(inventories, slots):
    """((node, host, port, user), ...) of the run's nodes that an inventory gives an ssh target."""
    if not inventories:
        return ()
    from .ansible import load, targets
    return tuple(sorted((node,) + t for node, t in targets(load(inventories), dict.fromkeys(slots)).items()))


def _ssh_config(o, v, pipeline, mark, files, slots, slurm_job=None, node_targets=(), live=False):
    """The run's SshConfig, its command found (where a node of ``slots`` is reached by it) and its
    flags and -o options checked; a --connect command found. This machine's ssh is asked what it
    needs (``ssh -V``) only where a node, a gateway or a live node list (``live``) may need it."""
    if o.ssh is not None and not isinstance(o.ssh, str):
        raise TypeError(f"ssh must be a string, not {type(o.ssh).__name__}")
    command = "ssh" if o.ssh is None else o.ssh
    ssh_options = checks.strings("ssh_options", o.ssh_options, "ssh options")
    env = exported(checks.strings("env", o.env, "variable names or globs"), os.environ)
    if env and not v["remote_cleanup"]:
        raise InputError("--env needs the remote wrapper, which exports the variables: not with --no-remote-cleanup")
    sudo_user = _sudo_user(o)
    if sudo_user is not None and not v["remote_cleanup"]:
        raise InputError("--sudo needs the remote wrapper, which runs sudo: not with --no-remote-cleanup")
    config = SshConfig.from_strings(command, ssh_options, ask=False, connect_timeout=v["connect_timeout"],
                                    alive_interval=v["alive_interval"], alive_count=v["alive_count"],
                                    remote_cleanup=v["remote_cleanup"], pipeline=v["pipeline"] and pipeline,
                                    mark=mark, env=env, workdir=files.workdir if files else None,
                                    connect=() if o.connect is None else transports.connect_words(o.connect),
                                    slurm_job=slurm_job, targets=node_targets, sudo=sudo_user)
    if slurm_job and shutil.which("srun") is None:
        raise InputError("--slurm: srun not found (Slurm's commands are needed where clstr runs)")
    if config.connect and not o.gateways and shutil.which(config.connect[0]) is None:  # (a gateway's own)
        raise InputError(f"--connect {o.connect!r}: command not found: {config.connect[0]}")
    reached = {transports.of(config, node).name for node in set(slots)}
    if "ssh" in reached and (not config.command or shutil.which(config.command[0]) is None):
        raise InputError(f"ssh command not found: {command!r} (see --ssh)")
    if "ssh" in reached or o.gateways or live:
        config = config.asked()
    refused = ssh_flag_refused(config.command)
    if refused is not None:
        raise InputError(f"--ssh {command!r}: ssh {refused[0]} {refused[1]}: leave it out")
    refused = ssh_option_refused(config.options)
    if refused is not None:
        raise InputError(f"-O {refused[0]!r}: ssh then {refused[1]}: leave it out")
    if o.connect_timeout is None and "ssh" in reached:
        config = _configured_timeout(config, slots)
    return config


def _configured_timeout(config, slots):
    """No --connect-timeout (nor a profile's): where the user's ssh configuration sets ConnectTimeout,
    it is the run's, not clstr's default (``ssh -G`` for the run's first node reached by ssh, once)."""
    first = next(node for node in slots if transports.of(config, node).name == "ssh")
    argv = ssh.without_timeout(transports.of(config, first).config_argv(), config)
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           timeout=ssh.CONFIG_WAIT)
    except (OSError, subprocess.SubprocessError):
        return config  # ssh's own failure is said when it connects
    seconds = ssh.configured_timeout(r.stdout.decode("utf-8", "replace")) if r.returncode == 0 else None
    return dataclasses.replace(config, connect_timeout=seconds) if seconds else config

def _sudo_user(o):
    """The user jobs run as under sudo (--sudo: root; --sudo-user), or None without sudo."""
    if not isinstance(o.sudo, bool):
        raise TypeError(f"sudo must be True or False, not {o.sudo!r}")
    if o.sudo_user is None:
        return "root" if o.sudo else None
    if not isinstance(o.sudo_user, str):
        raise TypeError(f"sudo_user must be a string, not {type(o.sudo_user).__name__}")
    try:
        return sudo.check_user(o.sudo_user)
    except ValueError as e:
        raise InputError(str(e)) from None


def _ask_sudo(o):
    """How the run asks for sudo's password: a function of (the node that asked, whether the run
    is stopping) -> the password or None."""
    given = o.sudo_password
    if given is None:
        return askpass.terminal
    if isinstance(given, str):
        return lambda node, stopped: given
    if callable(given):
        return lambda node, stopped: given(node)
    raise TypeError("sudo_password must be a string or a function of the node's name")


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
    genders = options.pop("genders", ())
    genders_file = options.pop("genders_file", None)
    given = Options.of(options)
    if node_files or profile or genders:
        nodes, given = from_sources(nodes, node_files, profile, given, genders, genders_file)
    return Run(jobs, nodes, given).execute()


def from_sources(nodes, node_files, profile, given, genders=(), genders_file=None):
    """(nodes, Options) of a call that names node files or profiles (nodes.Sources): the host
    patterns of all, and the Options ``given`` with the profiles' settings where it has none."""
    profile = [profile] if isinstance(profile, str) else profile
    src = Sources(tuple(checks.strings("nodes", nodes, "host patterns")),
                  tuple(checks.strings("node_files", node_files, "node file paths")),
                  tuple(checks.strings("profile", profile, "profile names")),
                  tuple(checks.strings("profiles", given.profiles, "profile files")),
                  tuple(checks.strings("genders", genders, "genders attributes")), genders_file)
    for key in ("ssh_options", "env", "basefile"):
        checks.strings(key, getattr(given, key), "strings")
    return src.nodes(), src.settings(workdir=given.workdir).fill(given)
