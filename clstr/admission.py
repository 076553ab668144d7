"""Pure: connection admission, which attempts may open a connection now.

Opening an ssh connection is the expensive, refusable step (a key exchange; a busy sshd drops
handshakes beyond its MaxStartups and refuses sessions beyond MaxSessions). Admission decides,
for a slot about to get an attempt, whether it opens a connection and whether it may now:

* connection groups: with shared connections, the slots of a node share one ControlMaster
  connection per ``sessions_per_connection`` slots; a group is ``unknown`` (no connection
  yet), ``opening`` (its opener, one slot, is connecting: the others wait) or ``up``;
* ``max_connecting``: at most that many connections being opened at once in the run, counted
  apart for the nodes each gateway drives (``NodeState.gateway``): a gateway opens its own;
* a node whose sshd refused handshakes opens fewer at once (halved on a refusal, one more with
  each connection it accepts), and nodes behind one ProxyJump host (a jump host, learned from
  their workers after a refusal) share one such limit, cut at most once a round;
* a slot refused by a busy sshd is held back a jittered while, doubling with each refusal in
  a row; a refused session moves the slot to a connection group of its own.

It keeps its counts in the scheduler's Slot and NodeState records (the fields their docstrings
give to admission) and in its own groups, openers and jump hosts; it never touches a process.
"""
from dataclasses import dataclass, field
from typing import Optional

UNKNOWN, OPENING, UP = "unknown", "opening", "up"
REFUSAL_HOLD_MAX = 8.0  # the longest a refused slot is held back, seconds


@dataclass
class JumpHost:
    """A ProxyJump host that several nodes' connections go through: its sshd's MaxStartups
    bounds them together, so the handshakes in flight through it are limited together."""

    name: str
    nodes: set = field(default_factory=set)
    refused: int = 0  # handshakes refused on nodes behind it
    open_limit: Optional[float] = None  # handshakes through it at once (additive increase, halved on refusal)
    cuts: int = 0  # times open_limit was halved: once a round, by a handshake begun after the last cut


class Admission:
    """Which attempts open a connection, and whether they may now (see the module docstring).

    ``slots`` and ``nodes`` are the scheduler's own lists of Slot and dict of NodeState.
    """

    def __init__(self, policy, slots, nodes, rng):
        self.policy = policy
        self.slots = slots
        self.nodes = nodes
        self.rng = rng
        self.groups = {}  # (node, n) -> UNKNOWN, OPENING or UP
        self._opener = {}  # group -> the slot opening its connection
        self._opening = set()  # slots whose attempt opens a connection that is not up yet
        self._opening_by = {}  # gateway (None: the root) -> how many of those are opened through it
        self._opened_by = {}  # slot in _opening -> the gateway it was counted under
        self._held = set()  # slots held back after a refusal
        self._groups_made = {}  # node -> connection groups made for it (a refused session moves a slot)
        self.jump_hosts = {}  # ProxyJump host -> JumpHost, learned from refusals

    # ---- slots ---------------------------------------------------------
    def add_slot(self, s, node):
        """Put a new slot in its node's connection group."""
        per = self.policy.sessions_per_connection
        s.group = (node.name, len(node.slots) // per if per else 0)
        self.groups.setdefault(s.group, UNKNOWN if self.policy.shared_connections else UP)

    def waits(self, s, now):
        """Whether the slot may not start anything now: its group's connection is being opened by
        another slot, or a refusal holds it back."""
        if self.groups[s.group] == OPENING:
            return True
        if s.index in self._held:
            if s.hold_until > now:
                return True
            self._held.discard(s.index)
        return False

    def plan(self, s, node):
        """(connect, opens) for the slot's next attempt, or None if the connection it would open may
        not be opened now. ``connect``: it opens its group's shared connection first; ``opens``: it
        opens a connection at all (counted against the limits)."""
        connect = self.groups[s.group] == UNKNOWN
        opens = connect if self.policy.shared_connections else not s.linked
        if not opens:
            return connect, opens
        limit = self.policy.max_connecting
        if limit is not None and self._opening_by.get(node.gateway, 0) >= limit:
            return None  # no connection opens now; a slot riding one that is up still may start
        if node.open_limit is not None and self._count(lambda n: n is node) >= node.open_limit:
            return None  # its sshd refused handshakes: fewer at once
        if node.jump_host is not None and self._jump_host_full(node.jump_host):
            return None  # its jump host refused handshakes: fewer through it at once
        return connect, opens

    def start(self, s, node, connect, opens):
        """The slot starts an attempt planned so; returns whether its worker should first look up
        the node's jump host (one refused handshakes, and this node is not looked up yet)."""
        if connect:
            self.groups[s.group] = OPENING
            self._opener[s.group] = s.index
        if opens:
            self._open(s.index, node.gateway)
            if node.jump_host is not None:
                s.jump_round = self.jump_hosts[node.jump_host].cuts
        return opens and bool(self.jump_hosts) and not node.jump_known

    def ended(self, s, connected):
        """The slot's attempt ended (``connected``: its connection came up, or was up)."""
        self._opened(s.index)
        if self._opener.get(s.group) == s.index:
            del self._opener[s.group]
            if self.groups[s.group] == OPENING:
                self.groups[s.group] = UP if connected else UNKNOWN

    def connected(self, s, node):
        """The slot's connection is up: the other slots of its group may start, and it no longer
        counts against max_connecting."""
        self.groups[s.group] = UP
        s.linked = True
        self._opened(s.index)
        self.accepted(node)

    def ready(self, s):
        """Whether the slot's connection is up: a job it takes starts at once."""
        return self.groups[s.group] == UP if self.policy.shared_connections else s.linked

    def handovers(self, free, jobs, now):
        """[(slot, ready slot)]: attempts still opening their connection, oldest slot first, each
        paired with a slot of ``free`` (usable, idle) whose connection is up and that may start now,
        where the job may go (not a job of its own node's, nor to a node it failed on)."""
        ready = [s for s in free if self.ready(s) and not self.waits(s, now)]
        pairs = []
        for idx in sorted(self._opening):
            a = self.slots[idx]
            if not ready:
                break
            if not a.busy or a.withdrawn or jobs[a.busy].pinned:
                continue
            b = next((r for r in ready if r.node not in jobs[a.busy].failed_nodes), None)
            if b is not None:
                ready.remove(b)
                pairs.append((idx, b.index))
        return pairs

    def _open(self, idx, gateway):
        if idx not in self._opening:
            self._opening.add(idx)
            self._opened_by[idx] = gateway
            self._opening_by[gateway] = self._opening_by.get(gateway, 0) + 1

    def _opened(self, idx):
        if idx in self._opening:
            self._opening.discard(idx)
            self._opening_by[self._opened_by.pop(idx)] -= 1

    def accepted(self, node):
        """The node accepted a connection: refusals in a row end, its open limits grow again."""
        node.seen_up = True
        node.refusals = 0
        if node.open_limit is not None:
            node.open_limit += 1
        jump = self.jump_hosts.get(node.jump_host)
        if jump is not None and jump.open_limit is not None:
            jump.open_limit += 1 / jump.open_limit  # about one more a round of handshakes

    def node_out(self, node):
        """The node went out of the run (its probe is due): its shared connections went with it."""
        for idx in node.slots:
            s = self.slots[idx]
            if self.groups[s.group] == UP and self.policy.shared_connections:
                self.groups[s.group] = UNKNOWN
            s.linked = False

    # ---- refusals and jump hosts ----------------------------------------
    def learned(self, node, jump_host):
        """The node's worker looked up its ProxyJump host ("" for none)."""
        if jump_host is None or node.jump_known:
            return
        node.jump_known = True
        if jump_host:
            node.jump_host = jump_host
            self.jump_hosts.setdefault(jump_host, JumpHost(jump_host)).nodes.add(node.name)

    def may_retry(self, node):
        """Whether a refusal of a busy sshd is one more to try again after, not the one that retires it."""
        return node.refusals + 1 < self.policy.refusals_max

    def refused(self, s, node, why, now):
        """A busy sshd refused the slot's handshake (``connection closed``) or session: hold the
        slot back a while (doubling with each refusal in a row, jittered so that slots do not come
        back together), open fewer connections to the node (and through its jump host) at once,
        and give a refused session a connection of its own."""
        node.refusals += 1
        node.refused += 1
        wait = min(self.policy.refusal_wait * 2 ** (node.refusals - 1), REFUSAL_HOLD_MAX)
        s.hold_until = now + wait * self.rng.uniform(0.5, 1.5)
        self._held.add(s.index)
        if why == "connection closed":
            opening = self._count(lambda n: n is node) + 1
            node.open_limit = max(1, min(node.open_limit or opening, opening) // 2)
            if node.jump_host is not None:
                # the refusal may be the jump host's: every node behind it opens fewer at once
                jump = self.jump_hosts[node.jump_host]
                jump.refused += 1
                if s.jump_round >= jump.cuts:  # not a handshake begun before the last cut
                    # the first time, which nodes share it is not known yet: all in flight may
                    through = (self._count(lambda n: n.jump_host == jump.name) if jump.cuts
                               else len(self._opening)) + 1
                    jump.open_limit = max(1, min(jump.open_limit or through, through) // 2)
                    jump.cuts += 1
        elif self.policy.shared_connections:
            # the connection it rode has as many sessions as the sshd allows: the slot opens its own
            made = self._groups_made.get(node.name, max(g[1] for g in self.groups if g[0] == node.name))
            self._groups_made[node.name] = made + 1
            s.group = (node.name, made + 1)
            self.groups[s.group] = UNKNOWN
            s.linked = False

    def next_hold(self, now):
        """When the first held slot may start again (None if none is held)."""
        due = [self.slots[i].hold_until for i in self._held if self.slots[i].hold_until > now]
        return min(due) if due else None

    @property
    def opening(self):
        """How many attempts are opening a connection now."""
        return len(self._opening)

    def _count(self, which):
        """How many connections being opened go to nodes ``which(node)`` picks."""
        return sum(1 for i in self._opening if which(self.nodes[self.slots[i].node]))

    def _jump_host_full(self, name):
        limit = self.jump_hosts[name].open_limit
        return limit is not None and self._count(lambda n: n.jump_host == name) >= int(limit)
