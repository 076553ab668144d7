"""One list of options (clstr.options.Options): the library, the command line and the docs agree on it."""
import dataclasses
import os
import re

import pytest

import clstr
from clstr import cli
from clstr.options import Options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# options the command line spells otherwise (see cli.command_line_options) or does not give
SPELLED_OTHERWISE = {"ssh_options", "timeout_percent", "gateways", "inputs", "log", "node_source", "alive_interval",
                     "alive_count", "sessions_per_connection",
                     "sudo_password"}  # the library's alone: a password never goes on a command line


@pytest.mark.parametrize("wrong,near", [("retry", "retries"), ("time_out", "timeout"), ("joblg", "joblog"),
                                        ("frobnicate", None)])
def test_a_wrong_keyword_names_the_nearest_option(wrong, near):
    with pytest.raises(TypeError) as e:
        clstr.run(["true"], ["n1"], **{wrong: 1})
    text = str(e.value)
    assert text.startswith(f"clstr.run: unknown option {wrong!r}")
    assert (f"did you mean {near}" in text) if near else "did you mean" not in text


def test_the_command_line_gives_every_option_under_its_own_name_and_default():
    parser = cli.build_parser()
    dests = {a.dest: a.default for a in parser._actions}
    for f in dataclasses.fields(Options):
        if f.name in SPELLED_OTHERWISE:
            continue
        assert f.name in dests, f"option {f.name} has no flag of its name"
        if f.name not in ("stdout", "stderr", "verbose", "timeout"):  # -o FILE, -v count, --timeout two forms
            assert dests[f.name] == f.default or (f.default == () and dests[f.name] == []), f.name


def test_the_command_line_options_of_a_plain_line_are_the_library_defaults():
    args = cli.build_parser().parse_args(["-j", "x"])
    assert cli.command_line_options(args) == Options()


def test_every_option_is_in_the_library_docs():
    with open(os.path.join(ROOT, "docs", "library.md")) as f:
        text = f.read()
    first_columns = re.findall(r"^\| ([^|]+) \|", text[text.index("## Options"):], re.M)
    listed = {name for column in first_columns for name in re.findall(r"`([a-z_]+)`", column)}
    missing = [name for name in Options.names() if name not in listed]
    assert not missing


def test_an_options_object_and_keywords_together():
    run = clstr.api.Run(["x"], ["a"], Options(timeout=60.0, ssh="true"), retries=2, job_failures="job")
    assert (run.options.timeout, run.policy.retries, run.policy.job_failures) == (60.0, 2, "job")
    with pytest.raises(TypeError, match="unknown option 'retry'"):
        clstr.api.Run(["x"], ["a"], Options(), retry=2)
    with pytest.raises(TypeError, match="options must be"):
        clstr.api.Run(["x"], ["a"], {"timeout": 1})
