"""YAML profiles: named node groups with their ssh settings.

A profile file maps a profile name to its definition::

    lab-machines:
      nodes: ["lab[01-20]", "4/bigbox"]
      slots: 2
      user: alice
      ssh_options: ["Port=2222"]
      connect_timeout: 5
      include: [gpu-boxes]
    gpu-boxes: ["gpu1", "gpu2"]       # a bare list (or one pattern) is shorthand for nodes

Files are read with ``yaml.safe_load`` semantics; every error names the file,
the line and the key.
"""
import os
from dataclasses import dataclass, field

import yaml

from . import hostlist, userfiles
from .errors import InputError

KEYS = {
    "nodes": "a list of host patterns, e.g. [\"node[01-12]\", \"4/bigbox\"]",
    "slots": "a whole number of job slots per node, at least 1",
    "ssh_options": "a list of ssh options such as \"Port=2222\"",
    "ssh": "the ssh command as a string, e.g. \"ssh -F ~/.ssh/lab_config\"",
    "connect_timeout": "a number of seconds",
    "user": "a remote user name",
    "include": "a list of other profile names",
}


@dataclass
class Profile:
    """One named node group as written in a file (before includes are merged)."""

    name: str
    path: str
    line: int
    nodes: list = field(default_factory=list)
    slots: int = 1
    ssh_options: list = field(default_factory=list)
    ssh: str = None
    connect_timeout: float = None
    user: str = None
    include: list = field(default_factory=list)

    @property
    def where(self):
        return f"{self.path}:{self.line}"


@dataclass
class Resolved:
    """A profile with its includes merged: the hosts (one entry per slot) and settings."""

    hosts: list
    ssh_options: list
    ssh: str = None
    connect_timeout: float = None


def default_search_path(environ=None):
    """The profile files searched, in order: $CLSTR_PROFILES, then XDG config, then /etc.

    Returns (path, required) pairs: files named explicitly must exist.
    """
    env = os.environ if environ is None else environ
    out = []
    for p in (env.get("CLSTR_PROFILES") or "").split(":"):
        if p:
            out.append((os.path.expanduser(p), True))
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    out.append((os.path.join(xdg, "clstr", "profiles.yaml"), False))
    out.append(("/etc/clstr/profiles.yaml", False))
    return out


def _line(node):
    return node.start_mark.line + 1


def _check_type(value, node, path, name, key):
    where = f"{path}:{_line(node)}"
    hint = KEYS[key]

    def bad():
        return InputError(f"profile {name!r}: key {key!r} must be {hint}", where)

    if key in ("nodes", "ssh_options", "include"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            raise bad()
        return [str(v) for v in value]
    if key == "slots":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad()
        return value
    if key == "connect_timeout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise bad()
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise bad()
    return value


def parse(text, path):
    """Parse one profile file's text into {name: Profile}; errors name path and line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"malformed YAML: {problem}", where) from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise InputError("a profile file must be a mapping of profile names to node lists", f"{path}:{_line(root)}")
    data = {str(k): v for k, v in data.items()}
    profiles = {}
    for key_node, val_node in root.value:
        name = key_node.value
        if not name:
            raise InputError("profile names must be non-empty strings", f"{path}:{_line(key_node)}")
        value = data[name] if name in data else None
        prof = Profile(name=name, path=path, line=_line(key_node))
        if isinstance(val_node, yaml.SequenceNode) or (
                isinstance(val_node, yaml.ScalarNode) and isinstance(value, str) and value):
            prof.nodes = _check_type(value, val_node, path, name, "nodes")
        elif isinstance(val_node, yaml.MappingNode):
            for k_node, v_node in val_node.value:
                key = k_node.value
                if key not in KEYS:
                    raise InputError(
                        f"profile {name!r}: unknown key {key!r} (known: {', '.join(KEYS)})",
                        f"{path}:{_line(k_node)}",
                    )
                setattr(prof, key, _check_type(value.get(key), v_node, path, name, key))
        else:
            raise InputError(
                f"profile {name!r} must be a list of nodes or a mapping with a 'nodes' key",
                f"{path}:{_line(val_node)}",
            )
        if not prof.nodes and not prof.include:
            raise InputError(f"profile {name!r} has no nodes", prof.where)
        profiles[name] = prof
    return profiles


class ProfileSet:
    """Every profile found along a search path; the first file that names a profile wins."""

    def __init__(self, files, regular_only=False):
        """``files``: (path, required) pairs in search order; ``regular_only``: read again mid-run,
        so only regular files are read (see userfiles)."""
        self.profiles = {}
        self.files = []
        for path, required in files:
            if not required and not os.path.exists(path):
                continue
            text = userfiles.read_text(path, "profile file", regular_only)
            self.files.append(path)
            for name, prof in parse(text, path).items():
                self.profiles.setdefault(name, prof)

    def names(self):
        return sorted(self.profiles)

    def get(self, name):
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            searched = ", ".join(self.files) or "no profile file found"
            raise InputError(f"unknown profile {name!r} (known: {known}; searched: {searched})") from None

    def resolve(self, name):
        """Merge a profile with its includes: hosts in order (one entry a slot), own nodes first.

        Each profile is resolved once, however many profiles include it, and the size of the
        whole is counted before anything is expanded: a file of include diamonds or of huge
        ranges is refused in one line instead of taking exponential time or all memory.
        """
        if not hasattr(self, "_sizes"):
            self._sizes, self._resolved = {}, {}
        size = self._size(name, ())
        if size > hostlist.MAX_HOSTS:
            raise InputError(f"profile {name!r} has more than {hostlist.MAX_HOSTS} slots with its includes",
                             self.get(name).where)
        return self._resolve(name)

    def _size(self, name, chain):
        """Slots of ``name`` with its includes, counted without expanding; finds include cycles."""
        if name in chain:
            cycle = " -> ".join(chain + (name,))
            raise InputError(f"include cycle: {cycle}", self.profiles[chain[0]].where)
        if name in self._sizes:
            return self._sizes[name]
        prof = self.get(name)
        total = 0
        for pattern in prof.nodes:
            try:
                n = hostlist.count(pattern)
            except InputError as e:
                raise InputError(f"profile {name!r}: {e.message}", prof.where) from None
            total += n if hostlist.split_slots(pattern)[0] is not None else n * prof.slots
        for inc in prof.include:
            if inc not in self.profiles:
                raise InputError(f"profile {name!r} includes unknown profile {inc!r}", prof.where)
            total += self._size(inc, chain + (name,))
            total = min(total, hostlist.MAX_HOSTS + 1)  # enough to refuse it; no huge numbers
        self._sizes[name] = total
        return total

    def _resolve(self, name):
        if name in self._resolved:
            return self._resolved[name]
        prof = self.get(name)
        hosts = []
        for pattern in prof.nodes:
            try:
                expanded = hostlist.expand(pattern)
                if hostlist.split_slots(pattern)[0] is None:
                    expanded = [h for h in expanded for _ in range(prof.slots)]
            except InputError as e:
                raise InputError(f"profile {name!r}: {e.message}", prof.where) from None
            if prof.user:
                expanded = [h if "@" in h else f"{prof.user}@{h}" for h in expanded]
            hosts.extend(expanded)
        result = Resolved(hosts=hosts, ssh_options=list(prof.ssh_options), ssh=prof.ssh,
                          connect_timeout=prof.connect_timeout)
        for inc in prof.include:
            sub = self._resolve(inc)
            result.hosts.extend(sub.hosts)
            result.ssh_options.extend(o for o in sub.ssh_options if o not in result.ssh_options)
            result.ssh = result.ssh or sub.ssh
            result.connect_timeout = result.connect_timeout or sub.connect_timeout
        self._resolved[name] = result
        return result
