"""Pure: jobs made from a command template and input sources, as GNU parallel makes them.

``clstr COMMAND ::: A B C`` runs COMMAND once for each input; ``:::: FILE`` takes the inputs
from FILE, one a line (``-``: stdin; several files, several sources). Several sources combine as every combination, the first
varying slowest; ``:::+`` and ``::::+`` pair a source with the one before it instead (the first
of the first with the first of the second, and so on, as far as the shorter goes).

Replacement strings, each value shell-quoted into the command (a file named ``a b;rm x`` is one
argument): ``{}`` the input (with several sources, their values joined by a space), ``{.}``
without its extension, ``{/}`` its basename, ``{//}`` its directory, ``{/.}`` its basename
without extension; ``{n}`` and ``{n.}``, ``{n/}``, ``{n//}``, ``{n/.}`` the n-th source's value
(``{-1}`` the last source's); ``{#}`` the job's number; ``{%}`` its slot (known when it starts).
A command without a replacement string gets `` {}`` at its end. The modifiers are GNU parallel's,
to the letter (``{.}`` of ``.bashrc`` is empty, ``{//}`` of ``a`` is ``.``).
"""
import itertools
import re

from .errors import InputError
from .ssh import quote

SEPARATORS = (":::", "::::", ":::+", "::::+")
# a job's slot is known only when it starts: this stands for it in the command until then (a NUL
# cannot be in a command, an input or a file line, so it cannot be the user's)
SLOT_MARK = "\0%\0"
HOST_MARK = "\0h\0"  # {host}: the node's name goes in when the job starts there
MARKS = (SLOT_MARK, HOST_MARK)
_REPLACEMENT = re.compile(r"\{(#|%|host|(-?\d+)?(\.|/|//|/\.)?)\}")


class Source:
    """One input source: its values, and whether it pairs with the source before it (``:::+``)."""

    def __init__(self, values, linked=False, where=":::"):
        self.values = list(values)
        self.linked = linked
        self.where = where


def split_argv(argv):
    """Split a command line at its first input separator: (the words before, [Source-like
    (separator, words) pairs]) or (argv, None) when it has no ``:::`` or ``::::``."""
    first = next((i for i, a in enumerate(argv) if a in SEPARATORS), None)
    if first is None:
        return argv, None
    groups, cur = [], None
    for a in argv[first:]:
        if a in SEPARATORS:
            cur = (a, [])
            groups.append(cur)
        else:
            cur[1].append(a)
    return argv[:first], groups


def sources(groups, read_file):
    """The Sources of ``(separator, words)`` groups; ``read_file(path)``: the lines of an argument file."""
    out = []
    for i, (sep, words) in enumerate(groups):
        linked = sep.endswith("+")
        if linked and i == 0:
            raise InputError(f"{sep} pairs a source with the one before it: give a ::: or :::: first")
        if sep.startswith("::::"):
            if not words:
                raise InputError(f"{sep} needs a file of arguments (- for stdin)")
            for k, path in enumerate(words):  # each file a source of its own, as GNU parallel reads them
                out.append(Source(read_file(path), linked and k == 0, f"{sep} {path}"))
        elif not words:  # a typo, not a wish to run nothing (an empty :::: file runs nothing, as parallel)
            raise InputError(f"{sep} is followed by no values: nothing would run (give the values after it)")
        else:
            out.append(Source(words, linked, sep))
    for s in out:
        for v in s.values:
            if "\n" in v or "\r" in v:
                raise InputError(f"input {v!r} of {s.where} holds a line break: refused (csh cannot take one "
                                 "quoted, and such a name cannot be a file to send)")
    return out


def combinations(srcs):
    """The inputs of each job, in order: a tuple of values (one a source) a job."""
    groups = []  # runs of sources linked together
    for s in srcs:
        if s.linked and groups:
            groups[-1].append(s)
        else:
            groups.append([s])
    per_group = [list(zip(*(s.values for s in g))) for g in groups]
    for combo in itertools.product(*per_group):
        yield tuple(v for part in combo for v in part)


def no_extension(value):
    return re.sub(r"\.[^/.]*$", "", value)


def basename(value):
    return re.sub(r"^.*/", "", value)


def dirname(value):
    """Perl's File::Basename::dirname, as GNU parallel's {//} uses it."""
    if value.endswith("/") and value.strip("/"):
        value = value.rstrip("/")
    if "/" not in value:
        return "."
    head = value[:value.rindex("/")].rstrip("/")
    return head or "/"


_MODIFIERS = {None: lambda v: v, ".": no_extension, "/": basename, "//": dirname,
              "/.": lambda v: no_extension(basename(v))}


def has_replacement(template):
    return _REPLACEMENT.search(template) is not None


def command(template, values, seq, quoted=True):
    """The command of job ``seq`` with the input ``values``: every replacement string replaced, each
    value quoted ({%} stays SLOT_MARK until the slot is known). ``quoted=False``: a path (a file to
    send or bring back), the values as they are."""
    q = quote if quoted else (lambda v: v)

    def replace(m):
        what, pos, mod = m.group(1), m.group(2), m.group(3)
        if what == "#":
            return str(seq)
        if what == "%":
            return SLOT_MARK
        if what == "host":
            return HOST_MARK
        fn = _MODIFIERS[mod]
        if pos is None:
            return " ".join(q(fn(v)) for v in values)
        n = int(pos)
        index = n - 1 if n > 0 else len(values) + n
        if n == 0 or not 0 <= index < len(values):
            return ""
        return q(fn(values[index]))
    return _REPLACEMENT.sub(replace, template)


def path(template, values, seq):
    """A transfer path of job ``seq`` (--transferfile, --return): the template with its values as
    they are, its {host} HOST_MARK until the node is known (``on_node``); {%} has no place in one
    (a file's name cannot wait for its slot)."""
    if "{%}" in template:
        raise InputError(f"{template!r}: {{%}} (known once the job starts) cannot name a file to send or bring back")
    return command(template, values, seq, quoted=False)


def as_file_name(node):
    """A node's name as one file name: a ``/`` in it is ``_``, and ``.`` or ``..`` gets a ``_`` before
    it (a name never leads a file out of its directory)."""
    name = node.replace("/", "_")
    return "_" + name if name in (".", "..") else name


def on_node(path, node):
    """A transfer path with its {host} the name of ``node`` (as_file_name; no quoting: a file's name)."""
    return path.replace(HOST_MARK, as_file_name(node)) if HOST_MARK in path else path


def jobs(template, srcs, limit):
    """The commands of the jobs of ``template`` over the Sources ``srcs`` (at most ``limit``: more
    is refused in one line, before any is made)."""
    return [c for c, _ in jobs_with_inputs(template, srcs, limit)]


def jobs_with_inputs(template, srcs, limit):
    """(command, its input values) of each job of ``template`` over ``srcs``; see jobs()."""
    if not template.strip():
        raise InputError("no command before ::: (clstr COMMAND ::: ARGUMENTS)")
    perl = re.search(r"\{=.*?=\}", template, re.S)
    if perl:
        raise InputError(f"{perl.group(0)!r}: GNU parallel's Perl replacement strings are not clstr's; use {{}}, "
                         "{.}, {/}, {//}, {/.}, {#}, {%}, {n} and the shell")
    if not has_replacement(template):
        template += " {}"  # as GNU parallel: the inputs go at the end
    total = 1
    groups = []
    for s in srcs:
        if s.linked and groups:
            groups[-1] = min(groups[-1], len(s.values))
        else:
            groups.append(len(s.values))
    for n in groups:
        total *= n
    if total > limit:
        raise InputError(f"the inputs make {total} jobs, more than {limit}")
    return [(command(template, values, seq), values) for seq, values in enumerate(combinations(srcs), 1)]


def for_slot(text, slot, node=None):
    """The command a job runs in slot ``slot`` (0-based) of ``node``: its {%} is the slot's number,
    from 1, its {host} the node's name (quoted)."""
    if SLOT_MARK in text:
        text = text.replace(SLOT_MARK, str(slot + 1))
    if HOST_MARK in text:
        text = text.replace(HOST_MARK, quote(node or ""))
    return text


def with_host(command):
    """A command given whole (-E, -j) with its ``{host}`` standing for the node's name."""
    return command.replace("{host}", HOST_MARK)


def shown(text):
    """A command as the summary, the job log and --json show it: {%} and {host} as written."""
    if "\0" in text:
        text = text.replace(SLOT_MARK, "{%}").replace(HOST_MARK, "{host}")
    return text
