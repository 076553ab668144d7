"""Pure: jobs run under sudo on their nodes (--sudo, --sudo-user), and what sudo's refusals mean.

A job under sudo is sent as a program of its own (``line``), run on the node by the job's shell
where the job itself would be: it first asks sudo whether it may run (``sudo -n true``, or
``sudo -S true`` given the password), and where sudo refuses it writes the mark
``<token>:u:<sudo's words>`` on stderr and ends: the job never started, and clstr reads why from
the mark (``reason``) and not from the job's output. Then it runs the job as
``sudo -S -u USER -- sh -c ...`` with the job's stdin at /dev/null, whatever sudo read, by the
login user's shell as any job is (sudo sets SHELL to the target user's, which for a service
account is nologin); beside the job, as USER, a watcher of sudo ends the job's process group
where sudo is killed under it (a job that ignored the TERM sudo relayed, then the KILL: sent as
the login user, it reaches sudo and not USER's processes). The job's exit status is sudo's.

The password travels only where a node asked for one: down the session's stdin, read by the
remote side into a shell variable (``read``, a builtin: never an argv, an environment or a
file), then piped to sudo by ``printf`` (a builtin too). It is asked once, here (edges: cli.py
and the supervisor), and only after a node's sudo said it needs one. A node whose sudo needs none
(NOPASSWD, a cached ticket) is never sent it.
"""
import dataclasses

from .events import Deferred
from .ssh import MARK_SUDO, quote

# What the job's shell runs instead of the job: $1 the target user, $2 the run's token, $3 "p"
# where the password waits on fd 5 ("-": none comes), $4 the job, then NAME=VALUE of --env
# (exported under sudo, which resets the environment). Lines end where a space may follow.
_PROGRAM = (
    "u=$1; t=$2; p=$3; j=$4; shift 4; pw=; "
    'if [ "$p" = p ]; then IFS= read -r pw <&5; exec 5<&-; fi; '
    'if [ -n "$pw" ]; then sm=$(printf \'%s\\n\' "$pw" | sudo -S -p \'\' -u "$u" -- true 2>&1 >/dev/null); '
    'else sm=$(sudo -n -u "$u" -- true 2>&1 </dev/null >/dev/null); fi || { '
    "sm=$(printf '%s' \"$sm\" | tr '\\n\\r' '  ' | cut -c1-300); "
    f'echo "$t:{MARK_SUDO}:${{sm:-sudo refused}}" >&2; exit 1; }}; '
    "{ [ -z \"$pw\" ] || printf '%s\\n' \"$pw\"; } | "
    "exec sudo -S -p '' -u \"$u\" -- sh -c "
    # as USER: the job, and beside it a watcher of sudo: where sudo dies under the job (the KILL
    # that ends a job ignoring the TERM sudo relayed, sent as the login user, who cannot signal
    # USER's processes), the watcher ends the job's process group as USER
    "'exec </dev/null; s=$1; j=$2; shift 2; for e in \"$@\"; do export \"$e\"; done; "
    "trap : TERM HUP INT; p=$PPID; \"$s\" -c \"$j\" & c=$!; "
    # (sudo is root's: a USER not root may not signal it, and is told so while it lives)
    "( trap : TERM HUP INT; while e=$(kill -0 \"$p\" 2>&1) || [ -z \"${e##*ermit*}\" ]; do sleep 1; done; "
    "kill -KILL 0 ) "
    "</dev/null >/dev/null 2>&1 & w=$!; "
    "while :; do wait \"$c\"; st=$?; kill -0 \"$c\" 2>/dev/null || break; done; "
    "kill -KILL \"$w\" 2>/dev/null; exit \"$st\"' "
    'clstr "${SHELL:-/bin/sh}" "$j" "$@"'
)
PROGRAM = quote(_PROGRAM)

# The reasons an attempt refused by sudo ends with: its node is not probed again for them
# (health.PERMANENT: a password tried again could lock the account), and the job moves on
ASKS = "sudo: a password is required"
NONE_GIVEN = "sudo: a password is required, and none was given"
WRONG = "sudo: incorrect password"
TTY = "sudo: a terminal is required (Defaults requiretty on the node)"
NOT_ALLOWED = "sudo: not allowed for this user on the node (sudoers)"
MISSING = "sudo: not installed on the node"
REASONS = (ASKS, NONE_GIVEN, WRONG, TTY, NOT_ALLOWED, MISSING)

# sudo's words (any version since 1.8) -> the reason; the first that matches
_WORDS = (
    ("incorrect password", WRONG), ("sorry, try again", WRONG), ("no password was provided", WRONG),
    ("must have a tty", TTY), ("terminal is required", TTY), ("a password is required", ASKS),
    ("not in the sudoers", NOT_ALLOWED), ("is not allowed to", NOT_ALLOWED), ("may not run sudo", NOT_ALLOWED),
    ("sudo: not found", MISSING), ("sudo: command not found", MISSING), ("sudo: no such file", MISSING),
)


def line(command, user, token, env=(), password=False):
    """The job text that runs ``command`` as ``user`` under sudo on the node, in any login
    shell's syntax (sh, csh and fish alike take it); ``password``: one waits on its fd 5."""
    args = " ".join(quote(a) for a in (user, token, "p" if password else "-", command, *env))
    return f"exec sh -c {PROGRAM} clstr {args}"


def reason(words):
    """The reason for sudo's refusal, from its words in the mark (bytes or text)."""
    if isinstance(words, bytes):
        words = words.decode("utf-8", "replace")
    low = words.lower()
    for part, why in _WORDS:
        if part in low:
            return why
    return "sudo: " + (words.strip()[:200] or "refused").removeprefix("sudo: ")


def check_user(user):
    """``user`` as --sudo-user takes it: a name or #uid; ValueError otherwise."""
    if not user or user.startswith("-") or any(c.isspace() or c in "'\"\\" for c in user):
        raise ValueError(f"--sudo-user {user!r}: not a user name")
    return user


def applies(job):
    """Whether the attempt ``job`` (an events.Job) runs under sudo: a job, not a probe (seq 0)."""
    return job.seq > 0


def asks(job, finished, node_asks):
    """Whether the attempt ended on sudo asking a password that the job carries and the node was
    not given yet: the worker runs it again, with it."""
    return (finished is not None and finished.reason == ASKS and job.sudo_password is not None
            and not node_asks)


def settled(job, finished):
    """The attempt's end where sudo asked for a password: an events.Deferred (the job goes back,
    and the run asks for the password) where the run has not asked yet, NONE_GIVEN where it
    asked and was given none; any other end as it is."""
    if finished is None or finished.reason != ASKS or not applies(job):
        return finished
    if not job.sudo_asked:
        return Deferred(finished.slot, finished.seq, None, password=True)
    return dataclasses.replace(finished, reason=NONE_GIVEN)
