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


# ---- Ansible inventories, against ansible-inventory --list ---------------------
INI = """# an inventory as a site writes it
lone ansible_host=10.0.0.9
[web]
web[01:03] ansible_user=deploy
www[a:c].example.com
[db]
db1:2222
db-[01:10:3]
[prod:children]
web
db
[web:vars]
ansible_port=2200
[prod:vars]
ansible_user=ops
ansible_host=gw.example
"""
YAML = """all:
  hosts:
    mail.example.com:
  children:
    webservers:
      hosts:
        foo.example.com:
        bar.example.com:
          ansible_port: 2222
          ansible_user: bob
      vars:
        ansible_user: www
    east:
      hosts:
        foo.example.com:
        one.example.com:
        three.example.com:
          ansible_host: 10.1.1.3
      children:
        webservers:
"""


def ansible_oracle(path):
    """{group: sorted hosts with its children's}, {host: (ansible_host, port, user)} of ansible-inventory."""
    import json
    r = subprocess.run(["ansible-inventory", "-i", str(path), "--list"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, ANSIBLE_LOCAL_TEMP=str(path.parent / "ans-tmp"),
                                ANSIBLE_HOME=str(path.parent / "ans-home")))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)

    def hosts(g, seen=()):
        out = set(data.get(g, {}).get("hosts", []))
        for c in data.get(g, {}).get("children", []):
            if c not in seen:
                out |= hosts(c, seen + (g,))
        return out
    groups = {g: sorted(hosts(g)) for g in data if g != "_meta"}
    hostvars = {h: tuple(None if v.get(k) is None else str(v[k]) for k in ("ansible_host", "ansible_port",
                                                                           "ansible_user"))
                for h, v in data["_meta"]["hostvars"].items()}
    return groups, hostvars


@pytest.mark.skipif(shutil.which("ansible-inventory") is None and not os.environ.get("CI"),
                    reason="ansible-core is not installed here")
@pytest.mark.parametrize("name,text", [("inv.ini", INI), ("inv.yaml", YAML)])
def test_an_ansible_inventory_reads_as_ansible_reads_it(tmp_path, name, text):
    from clstr.ansible import Inventory
    path = tmp_path / name
    path.write_text(text)
    groups, hostvars = ansible_oracle(path)
    inv = Inventory(text, str(path))
    for group, hosts in groups.items():
        if group == "all" or hosts:
            assert sorted(inv.hosts(group)) == hosts, group
    for host, target in hostvars.items():
        assert inv.target(host) == target, host
    assert sorted(inv.hosts("all")) == groups["all"]


def test_an_inventory_group_is_a_node_list_and_its_hosts_ssh_targets_are_followed(clstr, testbed, tmp_path):
    (tmp_path / "inv.ini").write_text(f"[web]\nfront1 ansible_host={testbed.addr['n1']}\n"
                                      f"front2 ansible_host={testbed.addr['n2']}\n[all:vars]\n"
                                      f"ansible_port={testbed.port}\n")
    # the testbed's ssh_config gives its key by node name: an inventory's names need it given
    r = clstr("-i", "inv.ini", "-n", "@web", "-O", f"IdentityFile={testbed.client_key}", "--tag", "-E",
              "echo $SSH_CONNECTION")
    assert r.returncode == 0, r.stderr
    got = dict(line.split(": ", 1) for line in r.stdout.splitlines())
    assert sorted(got) == ["front1", "front2"]  # the inventory's names
    assert got["front1"].split()[2] == testbed.addr["n1"] and got["front2"].split()[2] == testbed.addr["n2"]


@pytest.mark.parametrize("text,where", [("[web\nh1\n", ":1"), ("[web]\nh1 ansible_port\n", ":2"),
                                        ("[web]\nh[1:x]\n", ":2"), ("all:\n  hosts: [1, 2\n", ":")])
def test_a_broken_inventory_is_one_line_naming_the_file(tmp_path, text, where):
    (tmp_path / "inv").write_text(text)
    r = subprocess.run([sys.executable, "-m", "clstr", "-i", "inv", "-n", "@web", "-j", "true"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"inv{where}" in r.stderr, r.stderr


def test_an_inventorys_ssh_targets_travel_to_the_gateway(clstr, testbed, tmp_path):
    from clstr import frames
    from clstr.ssh import SshConfig
    cfg = SshConfig(("ssh",), targets=(("front1", "10.0.0.1", "2200", None), ("front2", None, None, "ops")))
    assert frames.setup_in(frames.decode(frames.setup_out(cfg, None, None, 2, False)))[0].targets == cfg.targets
    bad = frames.decode(frames.setup_out(cfg, None, None, 2, False))
    bad["ssh"]["targets"] = [["front1", 7, None, None]]
    with pytest.raises(frames.FrameError, match="target"):
        frames.setup_in(bad)
    (tmp_path / "inv.ini").write_text(f"[web]\nfront1 ansible_host={testbed.addr['n2']}\n"
                                      f"front2 ansible_host={testbed.addr['n3']}\n[all:vars]\n"
                                      f"ansible_port={testbed.port}\n")
    r = clstr("-i", "inv.ini", "-n", "@web", "--gateway", "n1=front[1-2]", "-O",
              f"IdentityFile={testbed.client_key}", "--json", "r.json", "--tag", "-E", "echo $SSH_CONNECTION")
    assert r.returncode == 0, r.stderr
    got = dict(line.split(": ", 1) for line in r.stdout.splitlines())
    assert got["front1"].split()[2] == testbed.addr["n2"] and got["front2"].split()[2] == testbed.addr["n3"]
    import json
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["gateways"]["n1"]["state"] == "up" and data["gateways"]["n1"]["nodes"] == ["front1", "front2"]


def test_a_node_file_may_name_an_inventorys_group(tmp_path):
    (tmp_path / "inv.ini").write_text("[web]\nfront[1:3]\n")
    (tmp_path / "nodes.txt").write_text("@web\nother1\n")
    assert dry_run_nodes(tmp_path, "-i", "inv.ini", "-N", "nodes.txt") == "front[1-3],other1"
