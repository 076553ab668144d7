"""Pure expansion and folding of pdsh/clush style host patterns.

``node[01-03]`` expands to ``node01 node02 node03`` (zero padding kept),
``r[1-2]n[1-2]`` to four hosts, and ``4/host`` gives ``host`` four slots.
"""
import re

from .errors import InputError

MAX_HOSTS = 100_000
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_SLOTS = re.compile(r"^(\d+)/(.+)$")


def _expand_range(spec, pattern):
    """The strings of one bracket body such as ``01-03,7``."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise InputError(f"empty item in range [{spec}] of {pattern!r}")
        if "-" in part:
            lo, _, hi = part.partition("-")
            if not (lo.isdigit() and hi.isdigit()):
                raise InputError(f"bad range {part!r} in {pattern!r} (expected e.g. 01-12)")
            a, b = int(lo), int(hi)
            if b < a:
                raise InputError(f"empty range {part!r} in {pattern!r} (end before start)")
            if b - a + 1 > MAX_HOSTS:
                raise InputError(f"range {part!r} in {pattern!r} expands to more than {MAX_HOSTS} hosts")
            width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
            out.extend(str(i).zfill(width) for i in range(a, b + 1))
        elif part.isdigit():
            out.append(part)
        else:
            raise InputError(f"bad range item {part!r} in {pattern!r}")
    return out


def split_slots(pattern):
    """Split GNU parallel's ``4/host`` form: (4, "host"); (None, pattern) without a count."""
    m = _SLOTS.match(pattern.strip())
    if not m:
        return None, pattern.strip()
    return int(m.group(1)), m.group(2)


def split_list(text):
    """Split ``a,node[1-3,5],b`` at the commas outside brackets (pdsh's -w form)."""
    parts, depth, cur = [], 0, []
    for c in text:
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def expand(pattern):
    """Expand one host pattern into the list of hosts (a host may repeat for slots).

    A comma list outside brackets (``a,b[1-2]``) expands each part in turn.
    """
    parts = split_list(pattern)
    if len(parts) > 1:
        return expand_all(parts)
    count, pattern = split_slots(pattern)
    slots = 1 if count is None else count
    if slots < 1:
        raise InputError(f"slot count must be at least 1 in '{count}/{pattern}'")
    if not pattern:
        raise InputError("empty host name")
    if pattern.count("[") != pattern.count("]"):
        raise InputError(f"unbalanced brackets in {pattern!r}")
    pieces = _BRACKET.split(pattern)
    # pieces alternates literal, range body, literal, ...
    hosts = [""]
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            if "[" in piece or "]" in piece:
                raise InputError(f"nested or stray bracket in {pattern!r}")
            hosts = [h + piece for h in hosts]
        else:
            values = _expand_range(piece, pattern)
            if len(hosts) * len(values) > MAX_HOSTS:
                raise InputError(f"{pattern!r} expands to more than {MAX_HOSTS} hosts")
            hosts = [h + v for h in hosts for v in values]
    if len(hosts) * slots > MAX_HOSTS:
        raise InputError(f"{pattern!r} expands to more than {MAX_HOSTS} slots")
    return [h for h in hosts for _ in range(slots)]


def count(pattern):
    """How many entries (hosts x slots) ``pattern`` expands to, without expanding it (checks it too)."""
    parts = split_list(pattern)
    if len(parts) > 1:
        return sum(count(p) for p in parts)
    slots, body = split_slots(pattern)
    if slots is not None and slots < 1:
        raise InputError(f"slot count must be at least 1 in '{slots}/{body}'")
    if body.count("[") != body.count("]"):
        raise InputError(f"unbalanced brackets in {body!r}")
    n = 1
    for i, piece in enumerate(_BRACKET.split(body)):
        if i % 2:
            n *= sum(_range_size(item, body) for item in piece.split(","))
    return n * (slots or 1)


def _range_size(item, pattern):
    item = item.strip()
    lo, dash, hi = item.partition("-")
    if dash and lo.isdigit() and hi.isdigit():
        return max(0, int(hi) - int(lo) + 1)
    if not dash and item.isdigit():
        return 1
    raise InputError(f"bad range item {item!r} in {pattern!r}")


def expand_all(patterns):
    """Expand several patterns in order, keeping duplicates (they are slots)."""
    out = []
    for p in patterns:
        out.extend(expand(p))
        if len(out) > MAX_HOSTS:
            raise InputError(f"node list has more than {MAX_HOSTS} slots")
    return out


_TAIL_NUM = re.compile(r"^(.*?)(\d+)$")


def _fmt_run(a, b, width):
    s = str(a).zfill(width)
    return s if a == b else f"{s}-{str(b).zfill(width)}"


def fold(hosts):
    """Fold hosts into a compact pattern: ``n01 n02 n03 n07`` -> ``n[01-03,07]``.

    Only the trailing number is folded; hosts are deduplicated; groups come in
    the order of their first host; the result expands back to the same hosts.
    """
    hosts = list(dict.fromkeys(hosts))
    padded = set()  # (prefix, width) seen with a leading zero
    for h in hosts:
        m = _TAIL_NUM.match(h)
        if m and m.group(2).startswith("0") and len(m.group(2)) > 1:
            padded.add((m.group(1), len(m.group(2))))
    groups = {}  # key -> numbers, in first-seen order of keys
    for h in hosts:
        m = _TAIL_NUM.match(h)
        if not m:
            groups[(h, None)] = None
            continue
        prefix, digits = m.groups()
        # "n10" belongs with "n01".."n09": same width, padding just not visible
        width = len(digits) if (prefix, len(digits)) in padded else 0
        groups.setdefault((prefix, width), []).append(int(digits))
    parts = []
    for (prefix, width), nums in groups.items():
        if nums is None:
            parts.append(prefix)
            continue
        nums = sorted(set(nums))
        if len(nums) == 1:
            parts.append(prefix + str(nums[0]).zfill(width))
            continue
        runs = []
        start = prev = nums[0]
        for n in nums[1:]:
            if n == prev + 1:
                prev = n
                continue
            runs.append(_fmt_run(start, prev, width))
            start = prev = n
        runs.append(_fmt_run(start, prev, width))
        parts.append(f"{prefix}[{','.join(runs)}]")
    return ",".join(parts)
