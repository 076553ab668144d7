"""Where sites keep their machines (issue 34): ClusterShell's groups, read as ClusterShell reads
them, checked against ClusterShell's own ``nodeset`` on the same configuration."""
import os
import shutil
import subprocess
import sys

import pytest

from clstr import clustershell
from clstr.errors import InputError

GROUPS_CONF = """[Main]
default: site
confdir: $CFGDIR/groups.conf.d
autodir: $CFGDIR/groups.d

[local]
map: sed -n 's/^$GROUP:\\(.*\\)/\\1/p' $CFGDIR/local.cfg
list: sed -n 's/^\\([0-9A-Za-z_-]*\\):.*/\\1/p' $CFGDIR/local.cfg
"""
LOCAL_CFG = "web: w[1-3]\ndb: d1,d2\n"
SITE_YAML = """site:
  compute: 'node[1-8]'
  gpu: 'node[7-8],g[1-2]'
  all: '@compute,@gpu'
other:
  compute: 'x[1-2]'
"""
EXTRA_CONF = """[slurm]
map: echo 'sn[1-$GROUP]'
all: echo 'sn[1-9]'
list: echo 2 3
"""
EXPRESSIONS = ["@compute", "@site:gpu", "@other:compute", "@local:web", "@local:db", "@compute!@gpu",
               "@compute&@gpu", "@compute^@gpu", "@site:*", "@all", "@slurm:3", "@slurm:*", "@web,@local:db",
               "@local:web,node3"]


@pytest.fixture
def cfgdir(tmp_path, monkeypatch):
    d = tmp_path / "clustershell"
    (d / "groups.d").mkdir(parents=True)
    (d / "groups.conf.d").mkdir()
    (d / "groups.conf").write_text(GROUPS_CONF)
    (d / "local.cfg").write_text(LOCAL_CFG)
    (d / "groups.d" / "site.yaml").write_text(SITE_YAML)
    (d / "groups.conf.d" / "slurm.conf").write_text(EXTRA_CONF)
    monkeypatch.setenv("CLUSTERSHELL_CFGDIR", str(d))
    return d


def dry_run_nodes(cwd, *args):
    r = subprocess.run([sys.executable, "-m", "clstr", "--dry-run", *args, "-j", "true"], capture_output=True,
                       text=True, cwd=cwd, timeout=60, env=dict(os.environ, XDG_CONFIG_HOME=str(cwd / "xdg")))
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]  # nodes: N (folded), slots: M
    return first[first.index("(") + 1:first.rindex(")")]


@pytest.mark.skipif(shutil.which("nodeset") is None and not os.environ.get("CI"), reason="no ClusterShell here")
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_a_group_expression_is_the_nodes_nodeset_gives(cfgdir, tmp_path, expr):
    if expr in ("@web,@local:db",):
        expr = "@local:web,@local:db"
    oracle = subprocess.run(["nodeset", "-f", expr], capture_output=True, text=True, timeout=30)
    assert oracle.returncode == 0, oracle.stderr
    assert dry_run_nodes(tmp_path, "-n", expr) == oracle.stdout.strip()


def test_a_profile_of_the_same_name_wins(cfgdir, tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("compute:\n  nodes: [mine1, mine2]\n")
    assert dry_run_nodes(tmp_path, "--profiles", str(prof), "-n", "@compute") == "mine[1-2]"
    assert dry_run_nodes(tmp_path, "--profiles", str(prof), "-n", "@site:compute") == "node[1-8]"


def test_an_unknown_group_or_source_is_one_line(cfgdir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "clstr", "-n", "@nosuch:x", "-j", "true"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert (r.returncode, r.stderr) == (2, "clstr: @nosuch:x: no ClusterShell group source 'nosuch'\n")
    r = subprocess.run([sys.executable, "-m", "clstr", "-n", "@site:nope", "-j", "true"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("clstr: @site:nope: no such ClusterShell group in source 'site'")


def test_an_upcall_that_fails_or_hangs_names_its_source_within_its_bound(cfgdir, monkeypatch):
    (cfgdir / "groups.conf.d" / "bad.conf").write_text("[bad]\nmap: echo oops >&2; exit 3\n[slow]\nmap: sleep 30\n")
    monkeypatch.setattr(clustershell, "UPCALL_WAIT", 0.5)
    g = clustershell.Groups()
    with pytest.raises(InputError, match=r"ClusterShell source 'bad' \(map upcall\) failed \(exit 3\): oops"):
        g.nodes("bad:x")
    with pytest.raises(InputError, match=r"ClusterShell source 'slow' \(map upcall\): no answer within 0.5 s"):
        g.nodes("slow:x")


def test_a_broken_groups_file_is_one_line_naming_it(cfgdir, tmp_path):
    (cfgdir / "groups.d" / "site.yaml").write_text("site:\n  compute: [unclosed\n")
    r = subprocess.run([sys.executable, "-m", "clstr", "-n", "@compute", "-j", "true"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert str(cfgdir / "groups.d" / "site.yaml") in r.stderr and "not valid YAML" in r.stderr
