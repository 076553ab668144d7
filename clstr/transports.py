"""How a node is reached: the argv that runs one of clstr's command lines there (pure).

A transport gives a shell command line to a node and hands back its stdin, stdout and stderr;
the job wrapper, the job loop and the file session (clstr/remote/*.sh) ride any of them
unchanged, and their marks tell a job that ran from a node that never ran it, whatever the
transport. Four:

- ``Ssh``, the default and the reference: OpenSSH, with shared connections (ControlMaster) and
  the ProxyJump lookup, and ssh's own words for why it failed.
- ``Local``: the node ``:`` (GNU parallel's name for this machine): the line run by the user's
  ``$SHELL -c`` here, as a login shell on a node would run it; nothing to share or look up.
- ``Slurm``: ``--slurm``, inside an allocation: a job step a session (slurm.py), a ``Command``
  whose command clstr writes.
- ``Command``: ``--connect TEMPLATE``, a command that runs its arguments on the node, such as
  ``docker exec -i {host}``, ``kubectl exec -i {host} --``, ``lxc-attach -n {host} --``: the line
  is given to it as ``sh -c LINE``. Its own failures are the last line it wrote before the job
  started (``Error response from daemon: No such container: c9``).

``of(cfg, node)`` chooses; pure, but for ``sweep``. The slot kinds (worker.py, execslot.py) ask a node's transport for
every argv, and never branch on which one it is.
"""
import functools
import os
import shlex

from . import ssh
from .errors import InputError

LOCAL = ":"  # the node that is this machine
HOST = "{host}"  # where --connect's template takes the node's name


class Ssh:
    """A node over OpenSSH: ``base`` is the run's ssh argv (ssh.base_argv)."""

    name = "ssh"
    shares = True  # a ControlMaster can carry the node's slots
    acks = False  # whether a session's stdout marks are to be answered (see Slurm)
    # why the transport failed, from its stderr before the job started: None for ssh, whose own
    # messages judging.py reads with its master's log; the others' ``classify(tail)``
    classify = None
    # a node that answers ssh.alive_line without a word: it has no sh (kept as the job's failure),
    # or, through a command, it was not reached (the connection's)
    silent_is_kept = True

    def __init__(self, base, node, target=None):
        # an inventory's ansible_host/port/user: the node keeps its name, ssh goes there (after the
        # user's own -o options, which win as ssh keeps the first value)
        host, port, user = target or (None, None, None)
        extra = (["-o", f"HostName={host}"] if host else []) + (["-o", f"Port={port}"] if port else []) + \
            (["-o", f"User={user}"] if user else [])
        self.base, self.node = list(base) + extra, node
        self.program = "ssh"

    def argv(self, line, control_path=None, cleanup=True):
        return ssh.job_argv(self.base, self.node, line, control_path, cleanup)

    def config_argv(self):
        """The argv that prints ssh's configuration for the node (its ProxyJump), or None."""
        return ssh.config_argv(self.base, self.node)

    def master_argv(self, control_path, persist=None):
        return ssh.master_argv(self.base, self.node, control_path, persist)

    def rsh(self):
        """(rsync's -e command, the host it names) that reach the node as ``argv`` does, over a
        connection of rsync's own (--copy/--rcopy drive rsync where both ends have it)."""
        port, host = ssh.destination(self.node)
        return shlex.join(self.base + ["-o", "ControlPath=none", *port]), host



class Local:
    """This machine: the line run by ``shell -c`` (the user's $SHELL), in a session of its own."""

    name = "local"
    shares = False
    acks = False
    silent_is_kept = True

    def __init__(self, shell):
        self.shell = shell
        self.program = os.path.basename(shell)

    def argv(self, line, control_path=None, cleanup=True):
        return [self.shell, "-c", line]

    def config_argv(self):
        return None

    def master_argv(self, control_path, persist=None):
        raise AssertionError("the local machine has no connection to share")

    @staticmethod
    def classify(tail):
        return last_line(tail)


class Command:
    """A node reached through a command that runs its arguments there: ``words`` with each
    ``{host}`` made the node's name, then ``sh -c LINE``."""

    name = "command"
    shares = False
    acks = False
    silent_is_kept = False

    def __init__(self, words, node):
        self.words = [w.replace(HOST, node) for w in words]
        self.program = os.path.basename(self.words[0])

    def argv(self, line, control_path=None, cleanup=True):
        return self.words + ["sh", "-c", line]

    def config_argv(self):
        return None

    def master_argv(self, control_path, persist=None):
        raise AssertionError("a --connect command has no connection to share")

    def classify(self, tail):
        line = last_line(tail)
        if line is None or line.startswith(f"{self.program}:"):
            return line
        return f"{self.program}: {line}"


class Slurm(Command):
    """A node of the run's Slurm allocation ``job``: each session one job step of one task on it
    (``--overlap``: the steps share the allocation's CPUs), named for the run's sweep (slurm.py)."""

    name = "slurm"
    # srun and the step's slurmstepd carry the session's stdout and stderr over one TCP connection
    # that Nagle's algorithm holds back: a stderr mark written just after a stdout mark waits for
    # srun's delayed ACK, 40 ms a job. A byte down stdin (a ping of the loop's reader, which says
    # nothing back while its runner lives) carries the ACK at once: the worker sends one after each
    # stdout mark of a pipelined session. Measured on the emulator: 44 ms to 0.14 ms a round trip.
    acks = True

    def __init__(self, job, node, token):
        super().__init__(("srun", f"--jobid={job}", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={HOST}",
                          "--input=all", "--quiet", "--kill-on-bad-exit=0", f"--job-name=clstr-{token}"), node)

    def argv(self, line, control_path=None, cleanup=True):
        if not cleanup:
            return super().argv(line)
        # the step's task exits 0 once clstr's program ended: its marks carry the job's status, and
        # srun says "srun: error: NODE: task 0: Exited with exit code N" of a task that did not
        return self.words + ["sh", "-c", 'sh -c "$1"; exit 0', "sh", line]


def last_line(tail):
    """The last non-empty line of ``tail`` (bytes), shortened, or None."""
    text = tail.decode("utf-8", "replace") if isinstance(tail, bytes) else tail
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    return lines[-1] if len(lines[-1]) <= 200 else lines[-1][:197] + "..."


def connect_words(template):
    """--connect's template as words (split as a shell would); InputError naming what is wrong."""
    if not isinstance(template, str):
        raise TypeError(f"connect must be a string, not {type(template).__name__}")
    try:
        words = shlex.split(template)
    except ValueError as e:
        raise InputError(f"--connect {template!r}: {e} (it is split as a shell would)") from None
    if not words:
        raise InputError("--connect '': expected a command such as 'docker exec -i {host}'")
    if not any(HOST in w for w in words):
        raise InputError(f"--connect {template!r}: no {HOST} (where the node's name goes), e.g. "
                         "'docker exec -i {host}'")
    return tuple(words)


def local_shell(environ=None):
    """The shell that runs jobs on ``:``: $SHELL, as a login on a node would, else /bin/sh."""
    shell = (os.environ if environ is None else environ).get("SHELL") or "/bin/sh"
    return shell if os.path.isabs(shell) else "/bin/sh"


def shown(node):
    """``node`` as a message names it before a colon: ``':'`` quoted, others as they are."""
    return "':'" if node == LOCAL else node


def is_local(node):
    """Whether ``node`` (a slot's node name) is this machine."""
    return node == LOCAL


@functools.lru_cache(maxsize=4096)
def of(cfg, node):
    """The transport that reaches ``node`` under the run's ssh.SshConfig ``cfg``."""
    if is_local(node):
        return Local(local_shell())
    if cfg.slurm_job:
        return Slurm(cfg.slurm_job, node, cfg.mark[:12])
    if cfg.connect:
        return Command(cfg.connect, node)
    target = next((t[1:] for t in cfg.targets if t[0] == node), None) if cfg.targets else None
    return Ssh(tuple(ssh.base_argv(cfg)), node, target)


def shares(cfg, node):
    """Whether ``node``'s slots may share one connection (a ControlMaster)."""
    return of(cfg, node).shares


def sweep(cfg, env):
    """At the end of a run: end what a transport keeps beyond the processes clstr started here
    (Slurm's job steps, whose srun was ended before Slurm ended them). The one part of this module
    that runs a process."""
    if cfg.slurm_job:
        from . import slurm
        slurm.sweep(cfg.slurm_job, cfg.mark[:12], env)


def control_path(control, cfg, node, group):
    """The ControlMaster socket a slot of ``node`` in connection ``group`` uses (``control``: the
    run's controldir paths, or None), or None where there is none or the node's transport has
    nothing to share."""
    return control.path(group) if control and shares(cfg, node) else None
