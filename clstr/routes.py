"""Pure: which gateway drives which node.

Routes come from ``--gateway GW=NODES`` (repeatable; GW may be a pattern: each gateway it names
reaches every node of NODES), a profile's ``gateways`` mapping (the same, as YAML), or
ClusterShell's ``topology.conf`` (``--topology FILE``: its ``[routes]`` section, one level of
gateways). A node reached by no gateway is driven directly. A node reached by several gateways
is given to the one with the fewest nodes so far (in the order the routes were given), and
keeps the others, in order, for when that one is lost or refused.

Nodes are matched by host name: ``alice@rack1-n01`` is routed as ``rack1-n01``.
"""
from . import hostlist
from .errors import InputError


def host_of(node):
    """The host name a node is routed by (its user@ taken off)."""
    return node.rpartition("@")[2]


def gateway_option(text):
    """{gateway: [nodes]} of one ``--gateway GW=NODES`` value."""
    gws, sep, nodes = text.partition("=")
    if not sep or not gws.strip() or not nodes.strip():
        raise InputError(f"--gateway {text!r}: expected GW=NODES, e.g. gw1=rack[1-10]-n[01-40]")
    return {gw: hostlist.expand(nodes.strip()) for gw in hostlist.expand(gws.strip())}


def mapping(value, where):
    """{gateway: [nodes]} of a profile's ``gateways`` value (a mapping of patterns to patterns)."""
    if not isinstance(value, dict) or not value:
        raise InputError("key 'gateways' must be a mapping of gateways to node patterns, "
                         "e.g. {gw1: \"rack[1-10]-n[01-40]\"}", where)
    out = {}
    for gws, nodes in value.items():
        if isinstance(nodes, str):
            nodes = [nodes]
        if not isinstance(gws, str) or not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise InputError(f"gateways: {gws!r}: expected a node pattern or a list of them", where)
        try:
            reach = [n for pattern in nodes for n in hostlist.expand(pattern)]
            for gw in hostlist.expand(gws):
                out.setdefault(gw, []).extend(reach)
        except InputError as e:
            raise InputError(f"gateways: {e.message}", where) from None
    return out


def topology(text, path, hostname=""):
    """{gateway: [nodes]} of a ClusterShell topology.conf's ``[routes]`` section.

    Each line ``A: B`` says the nodes of A reach the nodes of B. The root is the left side no
    other line reaches (or, of several, the one naming ``hostname``); the nodes its line reaches
    are gateways where they have a line of their own, nodes driven directly where not; lines of
    another root's tree are not this run's. A tree deeper than one level of gateways is refused,
    naming the line: the gateways run the nodes themselves.
    """
    lines, section = [], None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section != "routes":
            continue
        left, sep, right = line.partition(":")
        if not sep or not left.strip() or not right.strip():
            raise InputError("expected 'NODES: NODES' in [routes]", f"{path}:{n}")
        try:
            lines.append((n, set(hostlist.expand(left.strip())), hostlist.expand(right.strip())))
        except InputError as e:
            raise InputError(e.message, f"{path}:{n}") from None
    if not lines:
        raise InputError("no [routes] section with routes in it", path)
    reached = set().union(*(set(r) for _, _, r in lines))
    roots = [x for x in lines if not x[1] & reached]
    if len(roots) > 1:
        roots = [x for x in roots if hostname in x[1] or hostname.split(".")[0] in x[1]] or roots
    if len(roots) != 1:
        raise InputError("cannot tell the root of the tree: " + (
            "every line's nodes are reached by another" if not roots else
            f"lines {', '.join(str(x[0]) for x in roots)} each start one"), path)
    root_line = roots[0]
    first = set(root_line[2])
    out = {}
    for n, left, right in lines:
        if left is not root_line[1]:
            for gw in sorted(left & first):
                out.setdefault(gw, []).extend(right)
    second = set(n for reach in out.values() for n in reach)
    for n, left, right in lines:
        deeper = (left - first) & second
        if deeper:
            raise InputError(f"{hostlist.fold(sorted(deeper))}: reached through a gateway, and a gateway itself: "
                             "clstr drives one level of gateways (give their nodes to a first-level one)",
                             f"{path}:{n}")
    return out


class Routes:
    """The gateways of a run and the nodes each reaches."""

    def __init__(self, reach=None):
        self.reach = {}  # gateway -> set of host names it reaches
        self.order = []  # gateways in the order given
        for gw, nodes in (reach or {}).items():
            self.add(gw, nodes)

    def add(self, gw, nodes):
        if gw not in self.reach:
            self.order.append(gw)
            self.reach[gw] = set()
        self.reach[gw].update(nodes)

    def __bool__(self):
        return bool(self.order)

    def plan(self, nodes):
        """{node: (gateway, ...)} for the nodes some gateway reaches: the one that drives it
        first (the least loaded so far), then the others in the order given."""
        load = dict.fromkeys(self.order, 0)
        out = {}
        for node in dict.fromkeys(nodes):
            host = host_of(node)
            gws = [gw for gw in self.order if host in self.reach[gw] and host != gw]
            if not gws:
                continue
            first = min(gws, key=lambda g: load[g])
            load[first] += 1
            out[node] = (first,) + tuple(g for g in gws if g != first)
        return out

    def folded(self, plan, nodes):
        """Lines of the routing: each gateway with the nodes it drives, then the direct ones."""
        by = {gw: [] for gw in self.order}
        direct = []
        for node in dict.fromkeys(nodes):
            (by[plan[node][0]] if node in plan else direct).append(node)
        lines = [f"  {gw}: {len(v)} ({hostlist.fold(v)})" if v else f"  {gw}: no node of this run"
                 for gw, v in by.items()]
        if direct:
            lines.append(f"  direct: {len(direct)} ({hostlist.fold(direct)})")
        return lines


class _Unreachable:
    def __repr__(self):
        return "UNREACHABLE"


UNREACHABLE = _Unreachable()  # the route of a node whose gateways are all down, with --gateway-fallback none


class Router:
    """Where each node's attempts go now: a gateway (by name), None (the root drives it) or
    UNREACHABLE. A node keeps its route while it is in the run (its connections are there); it
    changes when the node is out (``reroute``) or its gateway is down.

    ``plan``: Routes.plan's; ``is_up(gateway)``: whether it is up now; ``fallback``: where a node
    goes whose gateways are all down, ``direct`` (the root) or ``none`` (UNREACHABLE).
    """

    def __init__(self, plan, is_up, fallback="direct"):
        self.plan = plan
        self.is_up = is_up
        self.fallback = fallback
        self.current = {}  # node -> its route now

    def choose(self, node):
        for gw in self.plan.get(node, ()):
            if self.is_up(gw):
                return gw
        return UNREACHABLE if node in self.plan and self.fallback == "none" else None

    def route(self, node):
        if node not in self.plan:
            return None
        cur = self.current.get(node)
        if cur is UNREACHABLE or (cur is not None and not self.is_up(cur)) or node not in self.current:
            cur = self.current[node] = self.choose(node)
        return cur

    def reroute(self, node):
        """The node is out of the run: its next probe may go another way."""
        if node in self.plan:
            self.current[node] = self.choose(node)
        return self.current.get(node)

    def drivers(self):
        """{node: the gateway that drives it now, or None} for the nodes some gateway reaches."""
        return {n: (None if g is UNREACHABLE else g) for n, g in self.current.items()}
