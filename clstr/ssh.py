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


# Remote cleanup: a watcher in the job's session and process group (the one sshd made) reads
# ssh's stdin, a pipe clstr holds open and never writes. When the pipe closes while the job's
# shell lives (ssh was ended, the connection dropped), it TERMs the whole process group.
# Background lists of a non-interactive sh read /dev/null, hence the explicit fd 3. The watcher
# starts from a subshell that exits at once: it is nobody's child, so a job's own `wait` does
# not wait for it (ksh93's `wait` would, even for a child it did not start). The job itself
# reads /dev/null, as with `ssh -n`.
_WATCH = 'exec 3<&0 </dev/null; ( { read -r _ <&3; kill -0 $$ && kill -TERM 0; } >/dev/null 2>&1 & ); exec 3<&-; '

# Any login shell (csh, fish, ...): sh starts the watcher, then becomes the job: the login shell
# runs it ($SHELL -c, as ssh alone would) and keeps sh's pid. Costs a second shell start a job.
_UNIVERSAL = _WATCH + 'exec "${SHELL:-/bin/sh}" -c "$1"'

# Login shells that run the watcher themselves and then the job with eval: no second shell.
# ksh93 is not one: it runs the subshell without forking, which makes the watcher its child.
INLINE_SHELLS = tuple(f"{d}/{sh}" for sh in ("bash", "dash", "zsh") for d in ("/bin", "/usr/bin", "/usr/local/bin"))
_IS_INLINE_SHELL = "test " + " -o ".join(f'"$SHELL" = {path}' for path in INLINE_SHELLS)  # built once, not a job


def quote(text):
    """``text`` as one word for sh, csh and fish alike.

    Single quotes, as shlex.quote, except that a quote or a backslash is written outside them,
    escaped (``\\'`` and ``\\\\``): inside single quotes fish reads ``\\'`` and ``\\\\`` as escapes
    where sh and csh keep them as they are; outside, all three read them the same.
    """
    if _SAFE.fullmatch(text):
        return text
    return "'" + _SPECIAL.sub(lambda m: "'\\" + m.group() + "'", text) + "'"


_SAFE = re.compile(r"[\w@%+=:,./-]+", re.ASCII)
_SPECIAL = re.compile(r"[\\']")
_UNIVERSAL_QUOTED = quote(_UNIVERSAL)


def remote_command(command, cleanup=True):
    """The command line sent to the node's login shell.

    With cleanup, one line that every login shell parses (sh, bash, zsh, ksh, csh, tcsh, fish):
    where ``$SHELL`` is one of INLINE_SHELLS it runs the watcher and evals the job itself,
    anywhere else it execs the universal wrapper. sshd runs the login shell of $SHELL, so the
    node needs no probe and the choice costs no round trip.
    """
    if not cleanup:
        return command
    quoted = quote(command)
    inline = quote(_WATCH + "eval " + quoted)
    return f"{_IS_INLINE_SHELL} || exec sh -c {_UNIVERSAL_QUOTED} clstr {quoted}; eval {inline}"


def job_argv(base, node, command, control_path=None, cleanup=True):
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
    return argv + ["--", node, remote_command(command, cleanup)]


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
