"""Pure: Ansible inventories (INI and YAML), their groups as node lists and their hosts' ssh targets.

Read as ansible-core's ``ini`` and ``yaml`` inventory plugins read them: groups, ``children``
(``[web:children]``), variables (``[web:vars]``, ``vars:``, a host line's ``key=value``), host
ranges (``web[01:50].example.com``, ``db-[a:f]``, strides ``[01:50:2]``), ``host:port``; the
groups ``all`` and ``ungrouped``. A host keeps its inventory name as its node name; its ssh target
follows ``ansible_host``, ``ansible_port`` and ``ansible_user`` (the host's own, else its groups',
the deeper group winning, then by name, as Ansible merges them). ``--inventory FILE`` reads one;
``@group`` then names one of its groups (after the profiles, before ClusterShell's groups).
"""
import re
import shlex
import string
from dataclasses import dataclass, field

from .errors import InputError

CONNECTION = ("ansible_host", "ansible_port", "ansible_user")
_RANGE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::(\d+))?\]")
MAX_HOSTS = 1_000_000


@dataclass
class Group:
    name: str
    hosts: list = field(default_factory=list)  # its own hosts, in order
    children: list = field(default_factory=list)
    vars: dict = field(default_factory=dict)


class Inventory:
    """The groups and hosts of one inventory file."""

    def __init__(self, text, path="inventory"):
        self.path = path
        self.groups = {"all": Group("all"), "ungrouped": Group("ungrouped")}
        self.hostvars = {}  # host -> its own variables
        self.order = []  # every host, in the order first seen
        if _looks_yaml(text):
            self._yaml(text)
        else:
            self._ini(text)
        grouped = {h for name, g in self.groups.items() if name not in ("all", "ungrouped") for h in g.hosts}
        self.groups["ungrouped"].hosts = [h for h in self.order if h not in grouped and
                                          h not in self.groups["ungrouped"].hosts] + \
            [h for h in self.groups["ungrouped"].hosts if h not in grouped]
        self.groups["ungrouped"].hosts = list(dict.fromkeys(self.groups["ungrouped"].hosts))

    # ---- reading --------------------------------------------------------
    def _group(self, name, where):
        if not re.fullmatch(r"[^\s:\[\]]+", name):
            raise InputError(f"bad group name {name!r}", where)
        return self.groups.setdefault(name, Group(name))

    def _host(self, pattern, where):
        hosts = expand(pattern, where)
        for h in hosts:
            if h not in self.hostvars:
                self.hostvars[h] = {}
                self.order.append(h)
        return hosts

    def _ini(self, text):
        group, kind = self.groups["ungrouped"], "hosts"
        for number, raw in enumerate(text.splitlines(), 1):
            where = f"{self.path}:{number}"
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                m = re.fullmatch(r"\[([^\]:]+)(?::(vars|children))?\]", line)
                if m is None:
                    raise InputError(f"bad section header {line!r}", where)
                group, kind = self._group(m.group(1), where), m.group(2) or "hosts"
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError as e:
                raise InputError(f"{e}: {line!r}", where) from None
            if kind == "children":
                child = self._group(words[0], where)
                if child.name not in group.children:
                    group.children.append(child.name)
            elif kind == "vars":
                key, eq, value = line.partition("=")
                if not eq or not key.strip():
                    raise InputError(f"expected key=value in [{group.name}:vars], got {line!r}", where)
                group.vars[key.strip()] = _value(value.strip())
            else:
                pattern, port = _port(words[0])
                hosts = self._host(pattern, where)
                own = {}
                if port:
                    own["ansible_port"] = port
                for word in words[1:]:
                    key, eq, value = word.partition("=")
                    if not eq:
                        raise InputError(f"expected key=value after the host, got {word!r}", where)
                    own[key] = _value(value)
                for h in hosts:
                    self.hostvars[h].update(own)
                    if h not in group.hosts:
                        group.hosts.append(h)

    def _yaml(self, text):
        import yaml
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise InputError(f"not valid YAML: {getattr(e, 'problem', None) or e}",
                             f"{self.path}:{mark.line + 1}" if mark else self.path) from None
        if not isinstance(data, dict):
            raise InputError("expected groups ('all:' with hosts, children, vars)", self.path)
        for name, body in data.items():
            self._yaml_group(str(name), body)

    def _yaml_group(self, name, body):
        group = self._group(name, self.path)
        if body is None:
            return
        if not isinstance(body, dict):
            raise InputError(f"group {name!r}: expected hosts, children or vars", self.path)
        for key in body:
            if key not in ("hosts", "children", "vars"):
                raise InputError(f"group {name!r}: unknown key {key!r} (hosts, children, vars)", self.path)
        for pattern, hv in (body.get("hosts") or {}).items():
            pattern, port = _port(str(pattern))
            for h in self._host(pattern, self.path):
                if port:
                    self.hostvars[h]["ansible_port"] = port
                if isinstance(hv, dict):
                    self.hostvars[h].update(hv)
                if h not in group.hosts:
                    group.hosts.append(h)
        if isinstance(body.get("vars"), dict):
            group.vars.update(body["vars"])
        for child, child_body in (body.get("children") or {}).items():
            if str(child) not in group.children:
                group.children.append(str(child))
            self._yaml_group(str(child), child_body)

    # ---- asking -----------------------------------------------------------
    def hosts(self, name):
        """Every host of group ``name`` and its children, in order; ``all``: every host."""
        if name == "all":
            return list(self.order)
        if name not in self.groups:
            raise InputError(f"@{name}: no group {name!r} in the inventory {self.path}")
        out, seen = [], set()

        def walk(g, chain):
            if g in chain:
                raise InputError(f"group {g!r} is its own child ({' -> '.join(chain + (g,))})", self.path)
            for h in self.groups[g].hosts:
                if h not in seen:
                    seen.add(h)
                    out.append(h)
            for c in self.groups[g].children:
                walk(c, chain + (g,))
        walk(name, ())
        return out

    def target(self, host):
        """(ansible_host, ansible_port, ansible_user) of ``host``, each None where not set."""
        merged = dict(self.groups["all"].vars)
        for g in self._member_of().get(host, ()):
            merged.update(self.groups[g].vars)
        merged.update(self.hostvars.get(host, {}))
        return tuple(None if merged.get(k) is None else str(merged[k]) for k in CONNECTION)

    def _member_of(self):
        """host -> the groups it is in (through children too), in the order their variables apply
        (shallower first, then by name): worked out once, not once a host."""
        if not hasattr(self, "_members"):
            self._members = {}
            groups = sorted((name for name in self.groups if name != "all"), key=lambda g: (self._depth(g), g))
            for g in groups:
                for h in self.hosts(g):
                    self._members.setdefault(h, []).append(g)
        return self._members

    def _depth(self, name, chain=()):
        parents = [g.name for g in self.groups.values() if name in g.children and g.name not in chain]
        return 1 + max((self._depth(p, chain + (name,)) for p in parents), default=0)


def load(paths, regular_only=False):
    """The Inventory of each file of ``paths``; InputError naming the file (and line)."""
    from .userfiles import read_text
    return [Inventory(read_text(p, "inventory file", regular_only), p) for p in paths]


def targets(inventories, nodes):
    """{node: (host, port, user)} of the ``nodes`` an inventory gives an ssh target (the first
    inventory that has the node)."""
    out = {}
    for node in nodes:
        for inv in inventories:
            if node in inv.hostvars:
                t = inv.target(node)
                if any(t):
                    out[node] = t
                break
    return out


def expand(pattern, where):
    """An Ansible host pattern's hosts: ``[01:50]``, ``[a:f]``, ``[0:10:2]`` ranges, leading
    zeros kept, each range in turn."""
    m = _RANGE.search(pattern)
    if m is None:
        if "[" in pattern or "]" in pattern:
            raise InputError(f"bad host range in {pattern!r} (Ansible's [01:50] or [a:f])", where)
        return [pattern]
    lo, hi, step = m.group(1), m.group(2), int(m.group(3) or 1)
    if lo.isdigit() and hi.isdigit():
        width = len(lo) if lo.startswith("0") else 0
        values = [str(n).zfill(width) for n in range(int(lo), int(hi) + 1, step)]
    elif len(lo) == len(hi) == 1 and lo in string.ascii_letters and hi in string.ascii_letters:
        values = [chr(c) for c in range(ord(lo), ord(hi) + 1, step)]
    else:
        raise InputError(f"bad host range [{lo}:{hi}] in {pattern!r}", where)
    if not values or step < 1:
        raise InputError(f"empty host range in {pattern!r}", where)
    out = []
    for v in values:
        out += expand(pattern[:m.start()] + v + pattern[m.end():], where)
        if len(out) > MAX_HOSTS:
            raise InputError(f"{pattern!r} makes more than {MAX_HOSTS} hosts", where)
    return out


def _port(pattern):
    """(pattern, port or None) of ``host:port``: the colon is outside the ranges, the only one there
    (an IPv6 address has several), and digits follow it."""
    head, sep, tail = pattern.rpartition(":")
    if sep and tail.isdigit() and pattern.rfind("]") < len(head) and ":" not in re.sub(r"\[[^\]]*\]", "", head):
        return head, tail
    return pattern, None


def _value(text):
    """An INI value as Ansible takes it: quotes removed."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _looks_yaml(text):
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s.startswith(";") or s == "---":
            continue
        return not s.startswith("[") and s.endswith(":") and "=" not in s
    return False
