"""The node-source seam: where a run's nodes come from, and the settings that come with them.

One place reads every source of nodes, for the command line and ``clstr.run`` alike: host
patterns (``node[01-12]``, ``4/host``, ``user@host``, ``^FILE``, ``@NAME``), node files (``-N``,
``node_files=``) and profiles (``-p``, ``profile=``: their nodes, and their ssh settings, work
directory, environment, basefiles and gateways, which the caller's own settings override). The
same ``Sources`` read again is a live node list (nodesource.NodeSource watches its files).
A new kind of source (an inventory, the local machine, a Slurm allocation) is read here.
"""
import os
from dataclasses import dataclass, field
from typing import Optional

from . import hostlist, slurm
from .errors import InputError
from .userfiles import read_lines


SLURM_GROUP = "slurm"  # @slurm: inside an allocation, its nodes (a group of that name elsewhere wins)


def group_resolver(files=(), regular_only=False, inventories=()):
    """``@NAME`` in a node list: the hosts of profile NAME, looked up in ``files`` and then the
    default profile files; else a group of the Ansible ``inventories``; else, inside a Slurm
    allocation, ``@slurm`` its nodes; else ClusterShell's group NAME (``@source:group`` always is
    one; Slurm's partitions, states, jobs and users are sources where sinfo is found). A profile wins over a group of the same name: it is
    clstr's own, and more often the one meant; an inventory named on the command line wins over
    ClusterShell's site-wide groups. All are read only when a node list names a group."""
    found = {}

    def profiles():
        if "profiles" not in found:
            from .profiles import ProfileSet, default_search_path
            found["profiles"] = ProfileSet([(f, True) for f in files] + default_search_path(),
                                           regular_only=regular_only)
        return found["profiles"]

    def clustershell():
        if "clustershell" not in found:
            from .clustershell import Groups
            found["clustershell"] = Groups()
        return found["clustershell"]

    def inventory():
        if "inventory" not in found:
            from .ansible import load
            found["inventory"] = load(inventories, regular_only)
        return found["inventory"]

    def hosts(name):
        if ":" not in name and name != "*":  # @source:group and @* are ClusterShell's alone
            if name in profiles().profiles:
                return profiles().resolve(name).hosts
            for inv in inventory():
                if name in inv.groups or name == "all":
                    return inv.hosts(name)
            if name == SLURM_GROUP and slurm.inside(os.environ) and not clustershell().knows(name):
                return [p.split("/", 1)[1] for p in slurm.allocation(os.environ)[1]]  # the allocation this runs in
            if not clustershell().knows(name):
                return profiles().resolve(name).hosts  # an unknown name: the profiles' message, which says where
        text = clustershell().nodes(name)
        return hostlist.expand_all([text], hostlist.Context(group=hosts, regular_only=regular_only)) if text else []
    return hosts


def read_node_file(path, groups=None, live=False):
    """The hosts of a node file (one entry a slot), as ``1/host`` entries; errors name file:line.

    ``live``: read again mid-run, so only regular files are read (nothing that could block).
    """
    ctx = hostlist.Context(group=groups, regular_only=live)
    try:
        hosts = hostlist.read_node_lines(read_lines(path, "node file", live), path, ctx)
    except InputError as e:
        if e.where and e.where.startswith(f"{path}:") and "cannot be a node" in e.message:
            # the usual mix-up: a job file where a node file goes (-N nodes.txt jobs.txt)
            raise InputError(f"{e.message}; is {path} a job file? Give job files before -N/-n or after --",
                             e.where) from None
        raise
    if not hosts:
        raise InputError("node file lists no nodes", path)
    return [f"1/{h}" for h in hosts]


@dataclass
class Settings:
    """What the profiles of a run say besides their nodes (None or empty: they say nothing)."""

    ssh: Optional[str] = None
    ssh_options: list = field(default_factory=list)
    connect_timeout: Optional[float] = None
    persist: Optional[float] = None
    workdir: Optional[str] = None
    env: list = field(default_factory=list)
    basefile: list = field(default_factory=list)
    gateways: dict = field(default_factory=dict)
    sudo: Optional[str] = None  # jobs run as this user under sudo (a profile's "sudo:")

    def fill(self, options):
        """``options`` (an options.Options) with these settings where it has none of its own: its
        ssh, connect_timeout, persist and workdir win; its lists come first, these added after."""
        changes = {key: getattr(self, key) for key in ("ssh", "connect_timeout", "persist", "workdir")
                   if getattr(options, key) is None and getattr(self, key) is not None}
        for key in ("ssh_options", "env", "basefile"):
            mine = list(getattr(options, key))
            changes[key] = mine + [v for v in getattr(self, key) if v not in mine]
        if self.sudo is not None and not options.sudo and options.sudo_user is None:
            changes.update(sudo=True, sudo_user=self.sudo)
        if self.gateways:
            gateways = {gw: list(reach) for gw, reach in (options.gateways or {}).items()}
            for gw, reach in self.gateways.items():
                gateways.setdefault(gw, []).extend([reach] if isinstance(reach, str) else reach)
            changes["gateways"] = gateways
        return options.but(**changes)


@dataclass(frozen=True)
class Sources:
    """Where a run's nodes come from: ``patterns`` (host patterns), ``files`` (node files),
    ``profiles`` (profile names), ``profile_files`` (profile files looked in first)."""

    patterns: tuple = ()
    files: tuple = ()
    profiles: tuple = ()
    profile_files: tuple = ()
    genders: tuple = ()  # pdsh's -g queries of a genders file (genders.py)
    genders_file: Optional[str] = None  # that file (default: genders.load's)
    inventories: tuple = ()  # Ansible inventories, whose groups @NAME may name

    def groups(self, live=False):
        """The lookup of ``@NAME`` in host patterns (node files' lines too)."""
        return group_resolver(self.profile_files, regular_only=live, inventories=self.inventories)

    def nodes(self, live=False, none_ok=False):
        """Every host pattern of the run (a node file's entries as ``1/host``, a profile's as
        ``@NAME``); InputError for none at all, unless ``none_ok`` (--slurm: the allocation's).
        ``live``: read again mid-run (regular files only)."""
        found = list(self.patterns)
        groups = self.groups(live)
        for path in self.files:
            found.extend(read_node_file(path, groups, live))
        found.extend(f"@{name}" for name in self.profiles)
        if self.genders:
            from .genders import load
            g = load(self.genders_file)
            for query in self.genders:
                chosen = g.nodes(query)
                if not chosen:
                    raise InputError(f"-g {query}: no node of {g.path} has it")
                found.extend(chosen)
        if not found and not none_ok:
            raise InputError("no nodes given (use --node, --node-file, --profile or -g)")
        return found

    def settings(self, live=False, workdir=None, environ=None):
        """What the profiles say besides their nodes, merged in their order (the first that sets
        ssh, connect_timeout or persist wins; options, env, basefiles and gateways add up). Two
        profiles setting different work directories are refused unless ``workdir`` (the caller's)
        settles it. The profiles' env names must be set here (checked unless ``live``)."""
        s = Settings()
        if not self.profiles:
            return s
        from .profiles import ProfileSet, default_search_path, join
        ps = ProfileSet([(p, True) for p in self.profile_files] + default_search_path(), regular_only=live)
        workdir_from = None
        for name in self.profiles:
            r = ps.resolve(name)
            if not live:
                from .checks import exported
                exported(r.env, os.environ if environ is None else environ, origin=f"profile {name!r}: env")
            join(s, r)
            if workdir is None and r.workdir is not None:
                if s.workdir is not None and s.workdir != r.workdir:
                    raise InputError(f"profiles {workdir_from!r} and {name!r} set different work directories "
                                     f"({s.workdir!r}, {r.workdir!r}): choose one with --workdir")
                s.workdir, workdir_from = r.workdir, name
        return s

    def watched(self):
        """The files a live node list reads again when they change: the node files, and the
        profile files where profiles are named (none: the list cannot change)."""
        files = list(self.files)
        if self.profiles:
            from .profiles import default_search_path
            files += list(self.profile_files) + [path for path, _ in default_search_path()]
        return files
