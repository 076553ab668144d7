"""YAML profiles: named node groups with their ssh settings.

A profile file maps a profile name to its definition::

    lab-machines:
      nodes: ["lab[01-20]", "4/bigbox"]
      slots: 2
      user: alice
      ssh_options: ["Port=2222"]
      connect_timeout: 5
      include: [gpu-boxes]
      workdir: ...                    # as --workdir; env and basefile as --env and --basefile
      env: ["OMP_NUM_THREADS"]
      basefile: [/home/alice/tool.sif]
    gpu-boxes: ["gpu1", "gpu2"]       # a bare list (or one pattern) is shorthand for nodes

Files are read with ``yaml.safe_load`` semantics; every error names the file,
the line and the key.
"""
import os
import re
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
    "workdir": "a directory on the nodes, '.' or '...' (as --workdir)",
    "env": "a list of variable names or globs, e.g. [\"OMP_*\"] (as --env)",
    "basefile": "a list of files here sent to each node once (as --basefile)",
    "persist": "a duration such as 300, 90s, 5m or 2h (as --persist)",
    "gateways": "a mapping of gateways to the nodes each reaches, e.g. {gw1: \"rack[1-10]-n[01-40]\"} (as --gateway)",
    "sudo": "true (jobs run as root under sudo, as --sudo) or a user name (as --sudo-user)",
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
    workdir: str = None
    env: list = field(default_factory=list)
    basefile: list = field(default_factory=list)
    persist: float = None
    gateways: dict = field(default_factory=dict)  # gateway -> [nodes it reaches]
    sudo: str = None  # the user jobs run as under sudo ("root" for true)

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
    slots: dict = field(default_factory=dict)  # host -> its slots (the hosts, as a set with counts)
    workdir: str = None
    env: list = field(default_factory=list)
    basefile: list = field(default_factory=list)
    persist: float = None
    gateways: dict = field(default_factory=dict)
    sudo: str = None


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

    if key in ("nodes", "ssh_options", "include", "env", "basefile"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            raise bad()
        return [str(v) for v in value]
    if key == "slots":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad()
        return value
    if key == "persist":
        from .checks import MAX_SECONDS, duration
        try:
            seconds = duration(value) if not isinstance(value, bool) else None
        except ValueError:
            seconds = None
        if seconds is None or not 0 < seconds <= MAX_SECONDS:
            raise bad()
        return seconds
    if key == "gateways":
        from .routes import mapping
        return mapping(value, where)
    if key == "sudo":
        if value is True:
            return "root"
        if value is False:
            return None
        from .sudo import check_user
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return check_user(value)
        except ValueError:
            raise bad() from None
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
        if re.search(r"[\s,!&^\[\]]", name):
            raise InputError(f"profile name {name!r} cannot be used as @{name} in a node list (no spaces, "
                             "commas, brackets or ! & ^)", f"{path}:{_line(key_node)}")
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
            hint = "" if self.files else ("; put profiles in ~/.config/clstr/profiles.yaml (conf/profiles.yaml "
                                          "documents every key)")
            raise InputError(f"unknown profile {name!r} (known: {known}; searched: {searched}){hint}") from None

    def resolve(self, name):
        """Merge a profile with its includes: hosts in order (one entry a slot), own nodes first.

        A profile's nodes with its includes, at any depth, are a set of nodes: a node reached
        more than once (``gpu`` and ``bigmem`` both hold ``box7``, ``lab`` includes both) counts
        once, with the largest slot count given for it on any path, as ClusterShell's groups and
        pdsh's genders are sets. Within the profile's own ``nodes`` list, a node written twice
        (or ``2/host``, or ``slots: 2``) has that many slots, as in any node list. Each profile is
        resolved once, however many profiles include it, so a diamond of includes resolves at once;
        a profile's own patterns are counted before they are expanded, so a huge range is refused
        in one line instead of taking all memory.
        """
        if not hasattr(self, "_resolved"):
            self._resolved = {}
        return self._resolve(name, ())

    def _resolve(self, name, chain):
        if name in chain:
            cycle = " -> ".join(chain + (name,))
            raise InputError(f"include cycle: {cycle}", self.profiles[chain[0]].where)
        if name in self._resolved:
            return self._resolved[name]
        prof = self.get(name)
        too_many = InputError(f"profile {name!r} has more than {hostlist.MAX_HOSTS} slots with its includes",
                              prof.where)
        own = 0
        for pattern in prof.nodes:
            try:
                n = hostlist.count(pattern)
            except InputError as e:
                raise InputError(f"profile {name!r}: {e.message}", prof.where) from None
            own += n if hostlist.split_slots(pattern)[0] is not None else n * prof.slots
        if own > hostlist.MAX_HOSTS:
            raise too_many
        slots = {}  # host -> its slots: a node written twice in the list has two
        for pattern in prof.nodes:
            try:
                expanded = hostlist.expand(pattern)
            except InputError as e:
                raise InputError(f"profile {name!r}: {e.message}", prof.where) from None
            per = 1 if hostlist.split_slots(pattern)[0] is not None else prof.slots
            for h in expanded:
                if prof.user and "@" not in h:
                    h = f"{prof.user}@{h}"
                slots[h] = slots.get(h, 0) + per
        result = Resolved(hosts=[], ssh_options=list(prof.ssh_options), ssh=prof.ssh,
                          connect_timeout=prof.connect_timeout, workdir=prof.workdir, env=list(prof.env),
                          basefile=list(prof.basefile), persist=prof.persist,
                          gateways={gw: list(n) for gw, n in prof.gateways.items()}, sudo=prof.sudo)
        for inc in prof.include:
            if inc not in self.profiles:
                raise InputError(f"profile {name!r} includes unknown profile {inc!r}", prof.where)
            sub = self._resolve(inc, chain + (name,))
            merge(slots, sub.slots)
            join(result, sub)
            result.workdir = result.workdir or sub.workdir
            if sum(slots.values()) > hostlist.MAX_HOSTS:
                raise too_many
        result.slots = slots
        result.hosts = [h for h, n in slots.items() for _ in range(n)]
        self._resolved[name] = result
        return result


def join(into, other):
    """Join ``other``'s settings into ``into``'s (a profile's, or a run's of several): the first
    ssh, connect_timeout and persist set win; options, env, basefiles and gateways add up."""
    into.ssh = into.ssh or other.ssh
    into.connect_timeout = into.connect_timeout or other.connect_timeout
    into.persist = into.persist or other.persist
    into.sudo = into.sudo or other.sudo
    into.ssh_options.extend(o for o in other.ssh_options if o not in into.ssh_options)
    for gw, reach in other.gateways.items():
        into.gateways.setdefault(gw, []).extend(reach)
    into.env.extend(e for e in other.env if e not in into.env)
    into.basefile.extend(b for b in other.basefile if b not in into.basefile)


def merge(slots, other):
    """Union of node sets with slots: each host of ``other`` gets the larger of its two counts."""
    for h, n in other.items():
        if n > slots.get(h, 0):
            slots[h] = n
