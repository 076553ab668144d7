"""ClusterShell's node groups, read as ClusterShell reads them, for ``@group`` in a node list.

Configuration (ClusterShell 1.9's): ``groups.conf`` in the configuration directories
(``$CLUSTERSHELL_CFGDIR`` alone where set, else ``/etc/clustershell``, then
``$XDG_CONFIG_HOME/clustershell`` or ``~/.config/clustershell``, then
``~/.local/etc/clustershell``; a later one's values win). Its ``[Main]`` section names the
``default`` source, ``confdir`` (more ``*.conf`` files of sources) and ``autodir`` (YAML files
``source: {group: nodes}``), both space-separated and taking ``$CFGDIR``. Every other section is
a source of upcalls: ``map`` (the nodes of ``$GROUP``), ``all`` (every node), ``list`` (the group
names); each is run by ``sh -c`` with ``$GROUP``, ``$SOURCE`` and ``$CFGDIR`` in its text, bounded
by UPCALL_WAIT, and asked once a run (ClusterShell's ``cache_time`` is longer than any run's
lookups). ``@group`` is in the default source, ``@source:group`` in that one, ``@source:*`` and
``@*`` every node of the source (its ``all`` upcall, else every group's nodes).

Where Slurm's commands are on PATH, the sources of ClusterShell's own Slurm example
(``groups.conf.d/slurm.conf.example``) are there too unless the configuration defines them:
``@slurmpart:NAME`` (``@sp:``, a partition's nodes), ``@slurmstate:STATE`` (``@st:``),
``@slurmjob:ID`` (``@sj:``, a running job's nodes) and ``@slurmuser:USER`` (``@su:``).

A group's nodes are a node set: ``@other`` references and the operators ``,`` ``!`` ``&`` ``^``
are expanded by hostlist.py, which folds and expands as ClusterShell's ``nodeset`` does.
"""
import configparser
import glob
import os
import re
import shutil
import subprocess

from .errors import InputError

_BARE = re.compile(r"@(?![\w.*-]*:)([\w.*-]+)")  # @group with no source:
UPCALL_WAIT = 10.0  # seconds an upcall may take: past it the source is reported, the run not started
# ClusterShell 1.9's groups.conf.d/slurm.conf.example, as it ships (the reverse upcalls aside)
SLURM_SOURCES = (
    (("slurmpart", "sp"), {"map": 'sinfo -h -o "%N" -p $GROUP', "all": 'sinfo -h -o "%N"', "list": 'sinfo -h -o "%R"'}),
    (("slurmstate", "st"), {"map": 'sinfo -h -o "%N" -t $GROUP', "all": 'sinfo -h -o "%N"',
                            "list": "sinfo -h -o \"%T\" | tr -d '*~#!%$@+^-'"}),
    (("slurmjob", "sj"), {"map": 'squeue -h -j $GROUP -o "%N"', "list": 'squeue -h -o "%i" -t R'}),
    (("slurmuser", "su"), {"map": 'squeue -h -u $GROUP -o "%N" -t R', "list": 'squeue -h -o "%u" -t R'}),
)
SLURM_EXAMPLE = "built in: ClusterShell's groups.conf.d/slurm.conf.example"


def config_dirs(environ=None):
    """The directories groups.conf is looked for in, in order (a later one's values win)."""
    env = os.environ if environ is None else environ
    if env.get("CLUSTERSHELL_CFGDIR"):
        return [env["CLUSTERSHELL_CFGDIR"]]
    home = os.path.expanduser("~")
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return ["/etc/clustershell", os.path.join(xdg, "clustershell"), os.path.join(home, ".local/etc/clustershell")]


class Groups:
    """The sources and groups of a ClusterShell configuration: ``nodes(name)`` for ``@name``."""

    def __init__(self, environ=None, run=None):
        self.default = None
        self.static = {}  # source -> {group: node set text} (YAML files)
        self.upcalls = {}  # source -> {"map"/"all"/"list": command, "cfgdir": dir}
        self.where = {}  # source -> the file that defines it
        self.cache = {}
        self.run = run or _upcall
        self.found = False
        for cfgdir in config_dirs(environ):
            conf = os.path.join(cfgdir, "groups.conf")
            if os.path.isfile(conf):
                self._read_conf(conf, cfgdir)
        if shutil.which("sinfo") and shutil.which("squeue"):
            for names, calls in SLURM_SOURCES:
                for name in names:
                    if name not in self.upcalls and name not in self.static:
                        self.upcalls[name] = dict(calls, cfgdir="")
                        self.where[name] = SLURM_EXAMPLE

    def _read_conf(self, path, cfgdir):
        self.found = True
        parser = _parser(path)
        main = parser["Main"] if parser.has_section("Main") else {}
        self.default = main.get("default", self.default)
        for section in parser.sections():
            if section != "Main":
                self._source(section, parser[section], cfgdir, path)
        for d in _dirs(main.get("confdir", ""), cfgdir):
            for conf in sorted(glob.glob(os.path.join(d, "*.conf"))):
                extra = _parser(conf)
                for section in extra.sections():
                    self._source(section, extra[section], d, conf)
        for d in _dirs(main.get("autodir", ""), cfgdir):
            for path_yaml in sorted(glob.glob(os.path.join(d, "*.yaml"))):
                self._read_yaml(path_yaml)

    def _source(self, name, section, cfgdir, path):
        for source in name.split(","):  # [a,b]: one section for several sources
            self.upcalls[source.strip()] = dict({k: section[k] for k in ("map", "all", "list") if k in section},
                                                cfgdir=cfgdir)
            self.where[source.strip()] = path
            if self.default is None:
                self.default = source.strip()

    def _read_yaml(self, path):
        import yaml
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read ClusterShell groups: {getattr(e, 'strerror', None) or e}", path) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise InputError(f"ClusterShell groups are not valid YAML: {getattr(e, 'problem', None) or e}",
                             f"{path}:{mark.line + 1}" if mark else path) from None
        if data is None:
            return
        if not isinstance(data, dict):
            raise InputError("ClusterShell groups: expected 'source: {group: nodes}' mappings", path)
        for source, groups in data.items():
            if not isinstance(groups, dict):
                raise InputError(f"ClusterShell source {source!r}: expected a mapping of group: nodes", path)
            mine = self.static.setdefault(str(source), {})
            for group, nodes in groups.items():
                if isinstance(nodes, list):
                    nodes = ",".join(str(n) for n in nodes)
                if not isinstance(nodes, (str, int)):
                    raise InputError(f"ClusterShell group {source}:{group}: expected a node set", path)
                mine[str(group)] = str(nodes)
            self.where.setdefault(str(source), path)
            if self.default is None:
                self.default = str(source)

    def knows(self, name):
        """Whether ``@name`` is a ClusterShell group here."""
        source, group = self._split(name)
        if source not in self.static and source not in self.upcalls:
            return False
        return group == "*" or group in self._list(source)

    def nodes(self, name):
        """The node set text of ``@name`` (``group``, ``source:group``, ``source:*``, ``*``)."""
        source, group = self._split(name)
        if source not in self.static and source not in self.upcalls:
            raise InputError(f"@{name}: no ClusterShell group source {source!r}")
        if group == "*":
            all_call = self.upcalls.get(source, {}).get("all")
            if all_call:
                return self._call(source, "all", None)
            return ",".join(self.nodes(f"{source}:{g}") for g in self._list(source)) or ""
        if group in self.static.get(source, {}):
            return self._qualified(self.static[source][group], source)
        if "map" in self.upcalls.get(source, {}):
            text = self._call(source, "map", group)
            if text:
                return self._qualified(text, source)
        raise InputError(f"@{name}: no such ClusterShell group in source {source!r} ({self.where.get(source)})")

    @staticmethod
    def _qualified(text, source):
        """A group's node set with its bare ``@other`` references made ``@source:other`` (a
        reference inside a source is to a group of the same source)."""
        return _BARE.sub(lambda m: f"@{source}:{m.group(1)}", text.replace(" ", ""))

    def _split(self, name):
        source, sep, group = name.partition(":")
        if not sep:
            source, group = self.default, name
        return source, group

    def _list(self, source):
        names = list(self.static.get(source, {}))
        if "list" in self.upcalls.get(source, {}):
            names += [g for g in self._call(source, "list", None).replace(",", " ").split() if g not in names]
        return names

    def _call(self, source, what, group):
        key = (source, what, group)
        if key not in self.cache:
            call = self.upcalls[source]
            text = (call[what].replace("$GROUP", group or "").replace("$SOURCE", source)
                    .replace("$CFGDIR", call["cfgdir"]))
            self.cache[key] = self.run(text, f"ClusterShell source {source!r} ({what} upcall)")
        return self.cache[key]


def _upcall(command, what):
    """The output of an upcall, its lines as one node set; InputError naming it if it fails or hangs."""
    try:
        r = subprocess.run(["sh", "-c", command], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=UPCALL_WAIT, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise InputError(f"{what}: no answer within {UPCALL_WAIT:g} s: {command}") from None
    except OSError as e:
        raise InputError(f"{what}: cannot run it: {e.strerror or e}") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        raise InputError(f"{what} failed (exit {r.returncode}): {last}")
    return ",".join(line.strip() for line in r.stdout.splitlines() if line.strip())


def _parser(path):
    parser = configparser.ConfigParser(interpolation=None, delimiters=(":", "="))
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise InputError(f"cannot read ClusterShell groups.conf: {e.strerror or e}", path) from None
    except configparser.Error as e:
        line = getattr(e, "lineno", None)
        raise InputError(f"ClusterShell groups.conf: {e.message.splitlines()[0] if hasattr(e, 'message') else e}",
                         f"{path}:{line}" if line else path) from None
    return parser


def _dirs(text, cfgdir):
    return [d.replace("$CFGDIR", cfgdir) for d in text.split() if d]
