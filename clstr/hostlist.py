"""Pure expansion and folding of host lists, read as pdsh and ClusterShell read them.

A host list is items joined by operators, applied left to right (ClusterShell's
rule): ``,`` union, ``!`` difference, ``&`` intersection, ``^`` symmetric difference.
An item is

* a pattern: ``node[01-03]`` (padding kept), ``n[1-10/2]`` (steps), ``r[1-2]n[1-2]``
  (several ranges), ``4/host`` (GNU parallel's form: four slots);
* ``-pattern`` (pdsh): removes those hosts from what came before;
* ``^FILE`` (pdsh): the host lists of FILE, one a line, ``#`` comments;
* ``@NAME`` (clush, GNU parallel): the hosts of profile group NAME; groups join as sets
  (a host already in the list keeps the larger of its slot counts, it is not added again);
* ``/REGEX/`` (pdsh): keeps only the hosts so far that REGEX matches.

A host is ``name``, ``user@name``, ``name:port``, an IPv6 address (``::1``,
``[::1]``, ``[::1]:2222``); anything else (spaces, shell syntax, an empty name)
is refused, so that a job file given where a node file goes cannot run.
A host listed N times has N slots; the set operators treat all of a host's
slots as one, and so does joining a group (``@gpu,@bigmem``: a host in both has the larger
of its two slot counts, never their sum).
"""
import re

from .errors import InputError

MAX_HOSTS = 100_000
_SLOTS = re.compile(r"^(\d+)/(.+)$")
_NAME = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
_V6 = r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9_.-]+)?"
_HOST = re.compile(rf"(?:[A-Za-z0-9_.+-]+@)?(?:{_NAME}(?::\d{{1,5}})?|\[{_V6}\](?::\d{{1,5}})?|{_V6})")
_OPERATORS = ",!&^"
_PLAIN = re.compile(rf"(?:(\d{{1,6}})/)?({_HOST.pattern})")  # one plain host, perhaps with its slots


def check_host(host):
    """Raise InputError unless ``host`` can be an ssh destination (and nothing a shell would read)."""
    if _HOST.fullmatch(host):
        return host
    if not host:
        raise InputError("empty host name")
    if any(c.isspace() for c in host):
        why = "it has a space; separate hosts with commas"
    elif re.search(r"[;|&$()<>'\"`\\*?{}~=]", host):
        why = "it has shell syntax"
    else:
        why = "it is not a host name, user@host, host:port or an IPv6 address"
    raise InputError(f"{host!r} cannot be a node ({why})")


# ---- tokens ----------------------------------------------------------------------------
def tokens(text):
    """``text`` as [(operator, item)]: the first operator is ``,``; brackets are never split."""
    out, op, cur, depth = [], ",", [], 0
    regex = False  # inside /.../: no operator, no bracket counts
    for i, c in enumerate(text):
        if regex:
            cur.append(c)
            regex = c != "/" or text[i - 1] == "\\"
            continue
        if c == "/" and not cur:
            cur.append(c)
            regex = True
            continue
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth < 0:
                raise InputError(f"nested or stray bracket in {text!r}")
        if depth == 0 and c in _OPERATORS and not (c == "^" and not cur):
            # "^" opening an item is pdsh's file reference; elsewhere it is an operator
            out.append((op, "".join(cur).strip()))
            op, cur = c, []
            continue
        cur.append(c)
    if depth:
        raise InputError(f"unbalanced brackets in {text!r}")
    out.append((op, "".join(cur).strip()))
    for op, item in out:
        if not item:
            raise InputError(f"empty item in {text!r}" if len(out) > 1 else "empty host name")
    return out


def split_list(text):
    """Split ``a,node[1-3,5],b`` at the commas outside brackets (pdsh's -w form)."""
    return [item for _, item in tokens(text)]


# ---- ranges ----------------------------------------------------------------------------
def _range_values(spec, pattern):
    """(number, width) pairs of one bracket body such as ``01-03,7,10-20/5``."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?:/(\d+))?)?", part)
        if not m:
            if not part:
                raise InputError(f"empty item in range [{spec}] of {pattern!r}")
            if "-" in part:
                raise InputError(f"bad range {part!r} in {pattern!r} (expected e.g. 01-12 or 1-10/2)")
            raise InputError(f"bad range item {part!r} in {pattern!r}")
        lo, hi, step = m.group(1), m.group(2), m.group(3)
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        a = int(lo)
        b = int(hi) if hi is not None else a
        s = int(step) if step else 1
        if b < a:
            raise InputError(f"empty range {part!r} in {pattern!r} (end before start)")
        if s < 1:
            raise InputError(f"bad step in {part!r} of {pattern!r}")
        if (b - a) // s + 1 > MAX_HOSTS:
            raise InputError(f"range {part!r} in {pattern!r} expands to more than {MAX_HOSTS} hosts")
        out.extend((str(i).zfill(width)) for i in range(a, b + 1, s))
    return out


def _pieces(pattern):
    """Alternating literal text and bracket bodies; a bracket holding ':' is an IPv6 literal, kept."""
    pieces, cur, i = [], [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            j = pattern.find("]", i)
            if j < 0 or "[" in pattern[i + 1:j]:
                raise InputError(f"nested or unbalanced brackets in {pattern!r}")
            body = pattern[i + 1:j]
            if ":" in body:  # [::1] or [fe80::1]:22: an address, not a range
                cur.append(pattern[i:j + 1])
            else:
                pieces.append("".join(cur))
                pieces.append(body)
                cur = []
            i = j + 1
            continue
        if c == "]":
            raise InputError(f"nested or stray bracket in {pattern!r}")
        cur.append(c)
        i += 1
    pieces.append("".join(cur))
    return pieces


def split_slots(pattern):
    """Split GNU parallel's ``4/host`` form: (4, "host"); (None, pattern) without a count."""
    m = _SLOTS.match(pattern.strip())
    if not m:
        return None, pattern.strip()
    return int(m.group(1)), m.group(2)


_NOT_IN_A_NODE = re.compile(r"\s|[;|&$()<>'\"`\\*?{}~=]")


def _expand_pattern(pattern):
    """One pattern (no operators): its hosts, one entry a slot."""
    if _NOT_IN_A_NODE.search(pattern):
        check_host(pattern)  # says why, naming the pattern as written
    count, body = split_slots(pattern)
    slots = 1 if count is None else count
    if slots < 1:
        raise InputError(f"slot count must be at least 1 in '{count}/{body}'")
    pieces = _pieces(body)
    ranges = [_range_values(piece, pattern) for piece in pieces[1::2]]
    total = slots
    for values in ranges:
        total *= len(values)
    if total > MAX_HOSTS:
        raise InputError(f"{pattern!r} expands to more than {MAX_HOSTS} slots")
    hosts = [pieces[0]]
    for values, literal in zip(ranges, pieces[2::2]):
        hosts = [h + v + literal for h in hosts for v in values]
    for h in hosts[:1] + hosts[-1:]:
        check_host(h)  # every host differs only in digits: the first and last tell for all
    return [h for h in hosts for _ in range(slots)]


def _count_pattern(body):
    n = 1
    for i, piece in enumerate(_pieces(body)):
        if i % 2:
            n *= sum(_range_size(item, body) for item in piece.split(","))
    return n


def _range_size(item, pattern):
    m = re.fullmatch(r"\s*(\d+)(?:-(\d+)(?:/(\d+))?)?\s*", item)
    if not m:
        raise InputError(f"bad range item {item.strip()!r} in {pattern!r}")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) is not None else a
    s = int(m.group(3)) if m.group(3) else 1
    return max(0, (b - a) // max(s, 1) + 1)


def count(pattern):
    """How many entries (hosts x slots) a plain pattern list expands to, without expanding it."""
    total = 0
    for _, item in tokens(pattern):
        if item[0] in "-^@/":
            continue  # exclusions, files, groups and filters are sized where they are read
        slots, body = split_slots(item)
        if slots is not None and slots < 1:
            raise InputError(f"slot count must be at least 1 in '{slots}/{body}'")
        total += _count_pattern(body) * (slots or 1)
    return total


# ---- lists -----------------------------------------------------------------------------
class Context:
    """Where ``^FILE`` and ``@NAME`` items are read from; the default reads files (userfiles) and
    knows no group. ``regular_only``: a live node list read again mid-run reads no FIFO or device."""

    def __init__(self, group=None, read=None, regular_only=False):
        self.group = group  # name -> [hosts]; None: @NAME is an error
        self.read = read or (lambda path: _read_host_file(path, regular_only))
        self.depth = 0

    def hosts_of_group(self, name):
        if self.group is None:
            raise InputError(f"@{name}: no profile groups to look it up in")
        return self.group(name)


def _read_host_file(path, regular_only=False):
    from .userfiles import read_lines  # the one reader of the user's files, bounded
    return read_lines(path, "node file", regular_only)


def read_node_lines(lines, where, ctx=None):
    """The hosts of numbered node-file lines (``#`` comments, blank lines skipped); errors name file:line.

    The lines read as one comma list: a line ``-node07`` removes node07 of the lines before it.
    Linear in the lines: a node file of 100,000 lines reads at once.
    """
    out = []
    for n, line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line[0] not in "-^@/" and _HOST.fullmatch(line):
            out.append(line)  # a plain host, as most lines are
            if len(out) > MAX_HOSTS:
                raise InputError(f"node list has more than {MAX_HOSTS} slots", f"{where}:{n}")
            continue
        try:
            out = _apply_into(out, line, ctx or Context())
        except InputError as e:
            if e.where:
                raise
            raise InputError(e.message, f"{where}:{n}") from None
    return out


def _is_regex(item):
    return len(item) > 1 and item.startswith("/") and item.endswith("/")


def _item(item, ctx):
    """The hosts a ``^FILE``, ``@NAME`` or plain pattern item names."""
    if item.startswith("^"):
        ctx.depth += 1
        try:
            if ctx.depth > 8:
                raise InputError(f"{item}: files referring to each other too deeply")
            path = item[1:]
            return read_node_lines(ctx.read(path), path, ctx)
        finally:
            ctx.depth -= 1
    if item.startswith("@"):
        return list(ctx.hosts_of_group(item[1:]))
    return _expand_pattern(item)


def _regex(item):
    try:
        return re.compile(item[1:-1])
    except re.error as e:
        raise InputError(f"bad regular expression {item!r}: {e}") from None


def _union(out, group):
    """``out`` joined by a group's hosts as sets join: a host already there keeps the larger of its
    two slot counts (groups overlap: a host in two groups is one host, not two slots)."""
    want = {}
    for h in group:
        want[h] = want.get(h, 0) + 1
    have = {}
    for h in out:
        if h in want:
            have[h] = have.get(h, 0) + 1
    for h, n in want.items():
        out.extend([h] * (n - have.get(h, 0)))
    if len(out) > MAX_HOSTS:
        raise InputError(f"node list has more than {MAX_HOSTS} slots")
    return out


def combine(left, op, right):
    """``left op right`` for host lists with slots (a host's slots count as one for ! & ^)."""
    if op == ",":
        out = left + right
    elif op == "!":
        gone = set(right)
        out = [h for h in left if h not in gone and h.rpartition("@")[2] not in gone]
    elif op == "&":
        keep = set(right)
        out = [h for h in left if h in keep]
    else:
        a, b = set(left), set(right)
        out = [h for h in left if h not in b] + [h for h in right if h not in a]
    if len(out) > MAX_HOSTS:
        raise InputError(f"node list has more than {MAX_HOSTS} slots")
    return out


def apply(so_far, text, ctx=None):
    """``so_far`` (hosts) followed by the host list ``text``, as if joined by a comma."""
    return _apply_into(list(so_far), text, ctx or Context())


def _apply_into(out, text, ctx):
    """``apply`` on a list of our own: a plain item extends it in place (no copy a line)."""
    m = _PLAIN.fullmatch(text)
    if m and text[0] not in "-^@/" and int(m.group(1) or 1) >= 1:
        out.extend([m.group(2)] * int(m.group(1) or 1))  # ``host`` or ``4/host``: no parsing needed
        if len(out) > MAX_HOSTS:
            raise InputError(f"node list has more than {MAX_HOSTS} slots")
        return out
    for op, item in tokens(text.strip()):
        if item.startswith("-") and op == ",":
            out = combine(out, "!", _item(item[1:], ctx))  # pdsh: -host removes it
        elif _is_regex(item):
            rx = _regex(item)
            matched = [h for h in out if rx.search(h)]
            out = matched if op in ",&" else combine(out, op, matched)  # pdsh: /re/ filters
        elif op == "," and item.startswith("@"):
            out = _union(out, _item(item, ctx))
        elif op == ",":
            out.extend(_item(item, ctx))
            if len(out) > MAX_HOSTS:
                raise InputError(f"node list has more than {MAX_HOSTS} slots")
        else:
            out = combine(out, op, _item(item, ctx))
    return out


def expand(text, ctx=None):
    """Expand one host list (see the module docstring) into hosts, one entry a slot, in order."""
    return apply([], text, ctx)


def expand_all(patterns, ctx=None):
    """Expand several host lists in order as one comma list, keeping duplicates (they are slots).

    So a list that starts with ``-`` or is a ``/regex/`` acts on all the lists before it, as
    in pdsh's ``-w host[1-9],-host5``.
    """
    ctx = ctx or Context()
    out = []
    for p in patterns:
        out = _apply_into(out, p, ctx)
    return out


def exclusions(patterns, ctx=None):
    """What ``-x`` lists remove: (hosts, regexes). ``-x /re/`` removes the hosts ``re`` matches."""
    ctx = ctx or Context()
    hosts, regexes = set(), []
    for p in patterns:
        for op, item in tokens(p.strip()):
            if _is_regex(item):
                regexes.append(_regex(item))
            else:
                hosts.update(_item(item, ctx))
    return hosts, regexes


# ---- folding ---------------------------------------------------------------------------
_DIGITS = re.compile(r"\d+")


def natural(text):
    """Sort key that puts n2 before n10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _ranges(values, width):
    """``1-3,7`` for sorted distinct ints, each written with ``width`` digits at least."""
    runs = []
    start = prev = values[0]
    for n in values[1:]:
        if n == prev + 1:
            prev = n
            continue
        runs.append((start, prev))
        start = prev = n
    runs.append((start, prev))
    return ",".join(str(a).zfill(width) if a == b else f"{str(a).zfill(width)}-{str(b).zfill(width)}"
                    for a, b in runs)


def fold_numbers(numbers):
    """``3-6,9,12-14`` for job numbers (any order, repeats dropped)."""
    values = sorted(set(numbers))
    return _ranges(values, 0) if values else ""


def _fold_nd(points):
    """Fold tuples of ints into [(set of first ints, ..., set of last ints)] boxes (greedy, by dimension)."""
    if len(points[0]) == 1:
        return [(tuple(sorted({p[0] for p in points})),)]
    by_first = {}
    for p in points:
        by_first.setdefault(p[0], []).append(p[1:])
    merged = {}
    for first, rests in by_first.items():
        for box in _fold_nd(rests):
            merged.setdefault(box, set()).add(first)
    return [(tuple(sorted(firsts)),) + box for box, firsts in merged.items()]


def fold(hosts):
    """Fold hosts into a compact host list, as ClusterShell's ``nodeset -f`` does.

    ``n01 n02 n03 n07`` -> ``n[01-03,07]``; every number of a name is folded
    (``cluster[50-52,99]-ipmi``, ``node[01-40].example.com``, ``da[2-3]c[1-2]``);
    ``node01..node128`` is ``node[01-128]``; groups are sorted; hosts are
    deduplicated; the result expands back to the same hosts.
    """
    hosts = list(dict.fromkeys(hosts))
    shapes = {}  # (literal parts) -> [(numbers as strings)]
    for h in hosts:
        if h.startswith("[") or ":" in h:
            shapes.setdefault((h,), []).append(())  # addresses are not folded
            continue
        shapes.setdefault(tuple(_DIGITS.split(h)), []).append(tuple(_DIGITS.findall(h)))
    groups = []
    for literal, numbers in shapes.items():
        if not numbers[0]:
            groups.append((natural(literal[0]), literal[0]))
            continue
        # the width of each field: padded numbers keep theirs; a longer unpadded one (n100 beside
        # n01) fits a padded width, as n[01-128] expands to it
        k = len(numbers[0])
        padded = [sorted({len(d) for t in numbers for d in [t[i]] if d.startswith("0") and len(d) > 1})
                  for i in range(k)]
        classes = {}
        for t in numbers:
            widths = []
            for i, d in enumerate(t):
                if d.startswith("0") and len(d) > 1:
                    widths.append(len(d))
                else:
                    fits = [w for w in padded[i] if w <= len(d)]
                    widths.append(max(fits) if fits else 0)
            classes.setdefault(tuple(widths), []).append(tuple(int(d) for d in t))
        for widths, points in classes.items():
            for box in _fold_nd(points):
                text = literal[0]
                for i, values in enumerate(box):
                    if len(values) == 1:
                        text += str(values[0]).zfill(widths[i])
                    else:
                        text += "[" + _ranges(list(values), widths[i]) + "]"
                    text += literal[i + 1]
                first = literal[0] + "".join(str(box[i][0]).zfill(widths[i]) + literal[i + 1] for i in range(k))
                groups.append((natural(first), text))
    return ",".join(text for _, text in sorted(groups))
