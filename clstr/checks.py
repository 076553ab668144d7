"""The one validation of a run's options, shared by ``clstr.run`` and the command line.

Each option has a kind; ``check(name, value)`` returns the value as the run uses it or
raises ``InputError`` (a bad value) or ``TypeError`` (a value of the wrong type, from the
library), naming the option both ways: ``timeout (--timeout)``; the command line names it as
the user typed it (InputError's ``option`` and ``detail``).
"""
import fnmatch
import math
import os
import re

from . import ssh
from .errors import InputError

MAX_SECONDS = 366 * 24 * 3600  # a year: any longer duration is taken for a typo
MAX_COUNT = 1_000_000

# name: (command-line flag, kind, bounds)
OPTIONS = {
    "timeout": ("--timeout", "seconds", (False, True)),  # (may be 0, may be None)
    "idle_timeout": ("--idle-timeout", "seconds", (False, True)),
    "timeout_percent": ("--timeout N%", "seconds", (False, True)),  # a percentage, checked as a number
    "connect_timeout": ("--connect-timeout", "seconds", (False, False)),
    "ssh_delay": ("--ssh-delay", "seconds", (True, False)),
    "reprobe": ("--reprobe", "seconds", (True, True)),  # 0: retired nodes stay out
    "reprobe_for": ("--reprobe-for", "seconds", (True, False)),
    "max_nodes": ("-m/--max-nodes", "count", (0, True)),
    "slots": ("--slots", "count", (1, True)),  # (least, may be None); 0 = no limit
    "max_connecting": ("--max-connecting", "count", (0, True)),
    "max_node_uses": ("-u/--max-node-uses", "count", (0, True)),
    "max_attempts": ("--max-attempts", "count", (1, False)),
    "retries": ("--retries", "count", (0, False)),
    "quarantine": ("--quarantine", "count", (0, True)),
    "alive_interval": ("-O ServerAliveInterval", "count", (1, False)),
    "alive_count": ("-O ServerAliveCountMax", "count", (1, False)),
    "sessions_per_connection": ("sessions_per_connection", "count", (1, False)),
    "job_failures": ("--job-failures", "choice", ("node", "job")),
    "persist": ("--persist", "seconds", (False, True)),
}
FLAGS = ("slurm", "remote_cleanup", "pipeline", "multiplex", "resume", "resume_failed", "tag", "tag_job", "group", "gather",
         "status", "bar", "verbose")
PATHS = {"active_nodes": "-A/--active-nodes", "joblog": "--joblog", "output_dir": "--output-dir",
         "state": "--state"}


def _name(name):
    flag = OPTIONS[name][0] if name in OPTIONS else PATHS.get(name, name)
    return name if flag == name else f"{name} ({flag})"


def _bad(name, detail):
    return InputError(f"{_name(name)} {detail}", option=name, detail=detail)


def check(name, value):
    """``value`` of option ``name`` as the run takes it; 0 counts as 'no limit' where that is allowed."""
    if name in FLAGS:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, not {type(value).__name__}")
        return value
    if name in PATHS:
        if value is None:
            return None
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            raise TypeError(f"{_name(name)} must be a path, not {value!r}")
        return os.fspath(value)
    flag, kind, bounds = OPTIONS[name]
    if kind == "choice":
        if value not in bounds:
            raise _bad(name, f"must be one of {', '.join(bounds)}, not {value!r}")
        return value
    if kind == "seconds":
        zero_ok, none_ok = bounds
        if value is None and none_ok:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{_name(name)} must be a number of seconds, not {type(value).__name__}")
        if math.isnan(value) or value < 0 or (value == 0 and not zero_ok) or value > MAX_SECONDS:
            least = "at least 0" if zero_ok else "more than 0"
            raise _bad(name, f"must be {least} and at most {MAX_SECONDS} seconds (a year), got {value:g}")
        return float(value)
    least, none_ok = bounds
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{_name(name)} must be a whole number, not {type(value).__name__}")
    if value < least or value > MAX_COUNT:
        raise _bad(name, f"must be a whole number from {least} to {MAX_COUNT}, got {value}")
    if value == 0 and none_ok:
        return None  # as in the original clstr: 0 is no limit
    return value


def strings(name, value, what, mark=None):
    """A list of strings from an iterable (a lone string is refused: it would be split into characters).

    ``mark``: strings holding a NUL that may stand in them (templates.MARKS in jobs).
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a list of {what}, not a single {type(value).__name__} "
                        f"(write [{value!r}])")
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{name} must be a list of {what}, not {type(value).__name__}") from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a string, not {type(item).__name__}")
        if "\0" in _without(item, mark or ()):
            raise InputError(f"{name}[{i}] has a NUL byte, which no shell command or host name can hold")
    return items


def _without(text, marks):
    for m in marks:
        text = text.replace(m, "")
    return text


def stream(name, value):
    """An output stream option: None (this process's), False (discard) or a writable stream."""
    if value is None or value is False:
        return value
    if not hasattr(value, "write"):
        raise TypeError(f"{name} must be a stream with write(), None or False, not {type(value).__name__}")
    return value


DURATION_FORMS = "a duration (30, 90s, 5m, 2h, 1d)"


def duration(text):
    """A duration as ssh's ControlPersist takes it (seconds, or a number with s, m, h or d), in
    seconds; ValueError if it is none."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = str(text).strip()
    scale = units.get(text[-1:].lower())
    value = float(text[:-1] if scale else text) * (scale or 1)
    if value != value:
        raise ValueError(text)
    return value


HALT_FORMS = "never, soon|now,fail|success|done=N or =N%, or 0, 1, 2, -1, -2, N%"


def halt(value):
    """--halt (GNU parallel's): None, or a scheduler.Halt; InputError naming the forms otherwise."""
    from .scheduler import Halt
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"halt must be a string such as 'soon,fail=1', not {type(value).__name__}")
    text = value.strip()
    legacy = {"0": None, "never": None, "1": ("soon", "fail=1"), "2": ("now", "fail=1"),
              "-1": ("soon", "success=1"), "-2": ("now", "success=1")}
    if text in legacy:
        if legacy[text] is None:
            return None
        when, why = legacy[text]
    elif text.endswith("%") and "," not in text:
        when, why = "soon", f"fail={text}"
    else:
        when, _, why = text.partition(",")
    what, _, n = why.partition("=")
    bad = InputError(f"--halt {value!r}: expected {HALT_FORMS}")
    if when not in ("soon", "now") or what not in ("fail", "success", "done") or not n:
        raise bad
    try:
        if n.endswith("%"):
            pct = float(n[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            return Halt(when, what, percent=pct)
        count = int(n)
        if not 1 <= count <= MAX_COUNT:
            raise ValueError
        return Halt(when, what, count=count)
    except ValueError:
        raise bad from None


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def exported(patterns, environ, origin="--env"):
    """--env: the ("NAME=VALUE", ...) of the variables set here that ``patterns`` name (a name, or a glob
    as GNU parallel's --env 'MY_*'); InputError for one that names none, or a value csh cannot quote.
    ``origin`` names where the patterns were given, in those errors."""
    out = {}
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            names = [n for n in environ if fnmatch.fnmatchcase(n, pattern)]
        elif _NAME.fullmatch(pattern):
            names = [pattern] if pattern in environ else []
        else:
            raise InputError(f"{origin} {pattern!r}: not a variable name or a glob of them")
        if not names:
            raise InputError(f"{origin} {pattern}: no such variable is set here")
        for name in sorted(names):
            if not _NAME.fullmatch(name):
                continue  # set here but no shell can name it (a glob may reach such)
            value = environ[name]
            if "\n" in value or "\r" in value:
                raise InputError(f"{origin} {name}: its value holds a line break, which csh cannot take quoted")
            out[name] = f"{name}={value}"
    try:
        ssh.check_env(out.values())
    except ValueError as e:
        raise InputError(f"{origin} {' '.join(patterns)}: {e}") from None
    return tuple(out.values())
