"""Counts in words, for what clstr prints: "1 job", "2 jobs"; and a text cut to a width."""


def noun(n, word, plural=None):
    """The noun as it goes after the count ``n``: singular for one."""
    return word if n == 1 else plural or word + "s"


def counted(n, word, plural=None):
    """``n`` with its noun: counted(1, "node") == "1 node", counted(2, "node") == "2 nodes"."""
    return f"{n} {noun(n, word, plural)}"


def cut(text, width):
    """``text`` in at most ``width`` characters: cut, with "..." at its end, where it is longer."""
    return text if len(text) <= width else text[:width - 3] + "..."
