"""Counts in what clstr prints: singular for one."""
import pytest

from clstr.words import counted, noun


@pytest.mark.parametrize("n,word,plural,text", [
    (0, "job", None, "0 jobs"), (1, "job", None, "1 job"), (2, "node", None, "2 nodes"),
    (1, "running job", None, "1 running job"), (3, "copy", "copies", "3 copies"), (1, "copy", "copies", "1 copy"),
])
def test_counted(n, word, plural, text):
    assert counted(n, word, plural) == text
    assert noun(n, word, plural) == text.split(" ", 1)[1]
