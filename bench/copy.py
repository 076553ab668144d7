"""W11: one file to every node and one file back from each, against clush, pdcp/rpdcp and pscp/pslurp.

A file of SIZE bytes (default 10 MB) goes to N nodes (default 200) under one directory, then
that file comes back from each node as DEST/NAME.NODE (clstr --rcopy, clush --rcopy, rpdcp) or
DEST/NODE/NAME (pslurp). Fan-out N for every tool; runs interleaved, medians with ranges.

The testbed's nodes are sshds of this machine and share its disk: every node writes the same
path, so a send is checked by each tool's own word for every node (its exit status, and
clstr's --json) and by the bytes of the file written; a return is checked file by file, each
node's copy here against the file's checksum, and removed before the next run.

    python3 bench/copy.py                   # 200 nodes, 10 MB, 3 rounds
    python3 bench/copy.py --nodes 20 --size 1M --repeat 1
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)

from bench import have, interleaved, table, timed  # noqa: E402
from sshnodes import Testbed  # noqa: E402

PY = sys.executable


def digest(path):
    with open(path, "rb") as f:  # a file of the size measured (10 MB): read whole
        return hashlib.sha256(f.read()).hexdigest()


def size_of(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def runs_of(tb, hosts, src, dest, back, root):
    """(name, argv, env, kind) of each tool's send ("to") and return ("back")."""
    folded = f"n[1-{len(hosts)}]"
    n = str(len(hosts))
    ssh = ["--ssh", tb.ssh]
    runs = [("clstr --copy", [PY, "-m", "clstr", *ssh, "-n", folded, "-c", src, "--dest", dest,
                              "--json", os.path.join(root, "to.json")], None, "to"),
            ("clstr --rcopy", [PY, "-m", "clstr", *ssh, "-n", folded, "--rcopy", src, "--dest", back,
                               "--json", os.path.join(root, "back.json")], None, "back")]
    if have("clush"):
        opt = ["-o", f"-F {tb.ssh_config}"]
        runs += [("clush -c", ["clush", "-f", n, "-w", folded, *opt, "-c", src, "--dest", dest], None, "to"),
                 ("clush --rcopy", ["clush", "-f", n, "-w", folded, *opt, "--rcopy", src, "--dest", back], None,
                  "back")]
    if have("pdcp"):
        env = dict(os.environ, PDSH_RCMD_TYPE="ssh", PDSH_SSH_ARGS=f"-F {tb.ssh_config} %h")
        runs += [("pdcp", ["pdcp", "-f", n, "-w", folded, src, dest], env, "to"),
                 ("rpdcp", ["rpdcp", "-f", n, "-w", folded, src, back], env, "back")]
    pscp, pslurp = shutil.which("parallel-scp"), shutil.which("parallel-slurp")
    if pscp and pslurp:
        hostfile = os.path.join(root, "hosts.txt")
        with open(hostfile, "w") as f:
            f.write("".join(h + "\n" for h in hosts))
        opt = ["-x", f"-F {tb.ssh_config}", "-p", n, "-h", hostfile]
        runs += [("pscp", [pscp, *opt, src, dest], None, "to"),
                 ("pslurp", [pslurp, *opt, "-L", back, src, os.path.basename(src)], None, "back")]
    return runs


def checker(hosts, src, dest, back, root, want):
    name = os.path.basename(src)

    def measure(run):
        tool, argv, env, kind = run
        for d in (dest, back):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        if kind == "back":
            shutil.copy(src, os.path.join(dest, name))  # not read: the nodes' copy is src itself
        r = timed(argv, env=env, timeout=900)
        if r["code"] != 0:
            r["check"] = f"exit {r['code']}: {(r['err'] or r['out']).strip().splitlines()[-1:]}"
            return r
        if kind == "to":
            path = os.path.join(dest, name)
            r["check"] = ("ok" if os.path.exists(path) and digest(path) == want else
                          "the file sent differs" if os.path.exists(path) else "no file sent")
            if tool.startswith("clstr"):
                with open(os.path.join(root, "to.json")) as f:
                    ok = sum(j["outcome"] == "succeeded" for j in json.load(f)["jobs"])
                if ok != len(hosts):
                    r["check"] = f"{ok} of {len(hosts)} nodes"
            return r
        got = []
        for h in hosts:
            # clush and rpdcp: DEST/NAME.NODE; pslurp: DEST/NODE/NAME (pssh 2.3: DEST/NODE:None/NAME)
            for path in (os.path.join(back, f"{name}.{h}"), os.path.join(back, h, name),
                         os.path.join(back, f"{h}:None", name)):
                if os.path.exists(path):
                    got.append(digest(path) == want)
                    break
        good = sum(got)
        r["check"] = "ok" if good == len(hosts) else f"{good} of {len(hosts)} files back whole"
        return r
    return measure


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--size", default="10M")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = size_of(args.size)
    with tempfile.TemporaryDirectory(prefix="clstr-w11-") as root:
        with Testbed(os.path.join(root, "tb"), count=args.nodes, max_sessions=16) as tb:
            hosts = tb.good[:args.nodes]
            src = os.path.join(root, "src", "payload.bin")
            os.makedirs(os.path.dirname(src))
            with open(src, "wb") as f:
                f.write(os.urandom(size))
            want = digest(src)
            dest, back = os.path.join(root, "dest"), os.path.join(root, "back")
            runs = runs_of(tb, hosts, src, dest, back, root)
            measure = checker(hosts, src, dest, back, root, want)
            rows = interleaved(runs, args.repeat, measure)
    mb = size / 2**20
    for kind, title in (("to", f"one {mb:g} MB file to each of {args.nodes} nodes"),
                        ("back", f"that file back from each of {args.nodes} nodes")):
        names = {r[0] for r in runs if r[3] == kind}
        table(f"W11: {title} (fan-out {args.nodes}; median of {args.repeat} interleaved runs, wall range in "
              "brackets)", [row for row in rows if row[0] in names])


if __name__ == "__main__":
    main()
