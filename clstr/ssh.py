"""Pure construction of ssh command lines and classification of ssh failures."""
import re
import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class SshConfig:
    """How to reach nodes: the ssh command, user options and time limits."""

    command: tuple = ("ssh",)
    options: tuple = ()  # user -o options, first so that they win (ssh keeps the first value)
    connect_timeout: float = 10
    alive_interval: int = 5
    alive_count: int = 3
    remote_cleanup: bool = True  # end the remote job when its ssh ends

    @classmethod
    def from_strings(cls, command="ssh", options=(), **kw):
        return cls(command=tuple(shlex.split(command)), options=tuple(options), **kw)


def base_argv(cfg):
    """ssh and its options common to every connection of a run."""
    argv = list(cfg.command)
    for opt in cfg.options:
        argv += ["-o", opt]
    argv += [
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={max(1, int(round(cfg.connect_timeout)))}",
        "-o", f"ServerAliveInterval={cfg.alive_interval}",
        "-o", f"ServerAliveCountMax={cfg.alive_count}",
    ]
    return argv


# Runs on the node around the job, in the session and process group sshd made for it. A
# watcher goes to the background reading ssh's stdin, a pipe clstr holds open and never
# writes; the wrapper then becomes the job: the login shell runs it ($SHELL -c, as ssh alone
# would) with stdin from /dev/null and keeps its pid. When the pipe closes while that pid
# lives (ssh was ended, the connection dropped), the watcher TERMs the whole process group.
# The shell exec'd after it does not know the watcher as a job: the job's own `wait` ignores it.
# Background lists of a non-interactive sh read /dev/null, hence the explicit fd 3.
_CLEANUP = (
    'exec 3<&0 </dev/null; '
    '{ read -r _ <&3; kill -0 $$ && kill -TERM 0; } >/dev/null 2>&1 & '
    'exec 3<&-; exec "${SHELL:-/bin/sh}" -c "$1"'
)


# Where the login shell is known to be sh or bash, it runs the same watcher itself and then the
# job with eval: no second shell started per job. Learnt once per node over its shared connection.
# The watcher starts from a subshell that exits at once, so it is no job of the login shell and
# a job's own `wait` does not wait for it.
_INLINE = 'exec 3<&0 </dev/null; ( { read -r _ <&3; kill -0 $$ && kill -TERM 0; } >/dev/null 2>&1 & ); exec 3<&-; '
POSIX_SHELLS = {"sh", "bash", "dash"}
SHELL_PROBE = "exec sh -c 'printf \"%s\\n\" \"$SHELL\"'"


def is_posix_shell(probe_output):
    """Whether the login shell that SHELL_PROBE printed is one that runs the inline wrapper."""
    shell = probe_output.decode("utf-8", "replace").strip() if isinstance(probe_output, bytes) else probe_output
    return shell.rsplit("/", 1)[-1] in POSIX_SHELLS


def remote_command(command, cleanup=True, posix_shell=False):
    """The command line sent to the node's login shell."""
    if not cleanup:
        return command
    if posix_shell:
        return f"{_INLINE}eval {shlex.quote(command)}"
    return f"exec sh -c {shlex.quote(_CLEANUP)} clstr {shlex.quote(command)}"


def job_argv(base, node, command, control_path=None, cleanup=True, posix_shell=False):
    """The argv that runs ``command`` on ``node``; over the node's master if ``control_path``.

    With ``cleanup``, ssh's stdin must be a pipe held open for as long as the job runs.
    """
    argv = list(base)
    if control_path:
        argv += ["-o", "ControlMaster=no", "-o", f"ControlPath={control_path}"]
    else:
        # a connection of its own, even where the user's ssh_config shares them: a master that
        # ssh_config's ControlPersist would background could keep our pipes open
        argv += ["-o", "ControlPath=none"]
    if not cleanup:
        argv.append("-n")
    return argv + ["--", node, remote_command(command, cleanup, posix_shell)]


# A master left behind by a supervisor killed with SIGKILL exits after this long without clients.
MASTER_IDLE = 60


def master_argv(base, node, control_path):
    """The argv that opens the node's ControlMaster and backgrounds once authenticated."""
    return list(base) + [
        "-o", "ControlMaster=yes", "-o", f"ControlPath={control_path}",
        "-o", f"ControlPersist={MASTER_IDLE}", "-n", "-N", "-f", "--", node,
    ]


# (pattern, reason, before the command ran)
_ERRORS = [
    (re.compile(r"Connection refused"), "refused", True),
    (re.compile(r"banner exchange|Connection timed out|Operation timed out"), "timed out", True),
    (re.compile(r"Permission denied|Too many authentication failures"), "authentication", True),
    (re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key .* not known"),
     "host key", True),
    (re.compile(r"Could not resolve hostname|Name or service not known"), "unknown host", True),
    (re.compile(r"No route to host|Network is unreachable"), "unreachable", True),
    (re.compile(r"kex_exchange_identification|Connection closed by .* port \d+$|Connection reset by .* port"),
     "connection closed", True),
    (re.compile(r"Timeout, server .* not responding"), "connection lost", False),
    (re.compile(r"closed by remote host|Broken pipe|Connection reset|Connection to .* closed"),
     "connection lost", False),
]


def classify(stderr_tail):
    """Why ssh failed, from its last stderr lines: (reason, never_ran) or (None, False)."""
    text = stderr_tail.decode("utf-8", "replace") if isinstance(stderr_tail, bytes) else stderr_tail
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines[-8:]):
        for pattern, reason, never_ran in _ERRORS:
            if pattern.search(line):
                return reason, never_ran
    return None, False
