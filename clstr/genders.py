"""Pure: a genders file (as LLNL's genders library and ``nodeattr`` read it) and pdsh's ``-g``.

A line names nodes (a comma list; host ranges as ``node[1-4]`` too) and their attributes, each
``attr`` or ``attr=value``, a comma list after whitespace; ``#`` starts a comment; a node named on
several lines has the attributes of all; ``%n`` in a value is the node's name. ``-g ATTR`` (pdsh)
selects the nodes that have the attribute, ``-g ATTR=VALUE`` those where it has that value, and a
comma list the nodes any of them selects, in the file's order (``nodeattr -n`` gives the same).
"""
import os
import re

from . import hostlist
from .errors import InputError
from .userfiles import read_text

DEFAULT = "/etc/genders"  # pdsh's and nodeattr's
_ATTR = re.compile(r"[^\s,=#]+")


class Genders:
    """The nodes of a genders file, in their order, each with its attributes (name -> value or None)."""

    def __init__(self, text, path="genders"):
        self.path = path
        self.attrs = {}  # node -> {attr: value or None}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) > 2:
                raise InputError(f"{path}:{number}: expected 'NODES ATTR,ATTR=VALUE', got {raw.strip()!r}")
            try:
                nodes = hostlist.expand(parts[0])
            except InputError as e:
                raise InputError(f"{path}:{number}: {e}") from None
            pairs = []
            for item in (parts[1].split(",") if len(parts) > 1 else []):
                name, eq, value = item.partition("=")
                if not _ATTR.fullmatch(name) or (eq and not value):
                    raise InputError(f"{path}:{number}: bad attribute {item!r}")
                pairs.append((name, value if eq else None))
            for node in nodes:
                mine = self.attrs.setdefault(node, {})
                for name, value in pairs:
                    mine[name] = value.replace("%n", node) if value is not None else None

    def nodes(self, query):
        """The nodes ``query`` selects: ``ATTR``, ``ATTR=VALUE``, or a comma list of them (any)."""
        terms = []
        for term in query.split(","):
            name, eq, value = term.strip().partition("=")
            if not _ATTR.fullmatch(name) or (eq and not value):
                raise InputError(f"-g {query!r}: expected ATTR or ATTR=VALUE, a comma list of them")
            terms.append((name, value if eq else None))
        return [node for node, attrs in self.attrs.items()
                if any(name in attrs and (value is None or attrs[name] == value) for name, value in terms)]


def load(path=None):
    """The Genders of ``path`` (default: $CLSTR_GENDERS, then /etc/genders); InputError naming it."""
    path = path or os.environ.get("CLSTR_GENDERS") or DEFAULT
    return Genders(read_text(path, "genders file"), path)
