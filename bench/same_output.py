#!/usr/bin/env python3
"""Whether two checkouts of clstr tell the same story of the same runs: for a change that is meant
to change nothing (a refactoring), the --dry-run plan, the summary on stderr, the job log and the
--json of a few mixed runs must be byte-identical, save times, pids and tokens.

    python3 bench/same_output.py OLD_CHECKOUT NEW_CHECKOUT    # prints the differences; exit 1 if any

Each run is made by each checkout (PYTHONPATH) against one loopback testbed (tests/sshnodes.py):
failures (node mode and job mode with retries), a refused node, a node whose key is refused, a
timeout, an idle timeout, --on-each-node, a job that ends its process group, and --resume.
"""
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from sshnodes import Testbed  # noqa: E402

JOBS = ["echo one", "echo two >&2; exit 3", "sleep 3; echo slow", "echo four", "exit 255",
        "printf 'no newline'", 'trap "kill 0" EXIT; echo five', "sleep 0.2; echo six",
        "echo seven; sleep 4; echo never-idle", "echo eight"]

RUNS = {
    # one job at a time (-m 1): which slot runs what is then the same in every run
    "node mode": ["-m", "1", "-n", "n1", "-n", "n2", "-n", "refused", "--timeout", "2", "--reprobe", "0"],
    "job mode with retries": ["-m", "1", "-n", "2/n1", "-n", "n3", "-n", "badauth", "--job-failures", "job",
                              "--retries", "1", "--idle-timeout", "2", "--reprobe", "0"],
    "no pipeline": ["-m", "1", "-n", "n1", "-n", "n2", "--no-pipeline", "--job-failures", "job", "--timeout", "2.5"],
    "on each node": ["-n", "n[1-3]", "-n", "refused", "-E", "hostname >/dev/null; echo up"],
}


def normalize(text, tb, work):
    text = text.replace(work, "WORK")
    text = re.sub(r"(?m)^(clstr: slowest: )(.*)$", lambda m: m.group(1) + ", ".join(sorted(m.group(2).split(", "))),
                  text)  # which of equally quick jobs was slowest is the clock's
    text = re.sub(r"\b\d{10}\.\d+\b", "EPOCH", text)  # epoch times
    text = re.sub(r"\b\d+\.\d+ ?s\b", "N s", text)  # durations
    text = re.sub(r"(\"(?:runtime|start|left|back|started|ended|elapsed)\": )[\d.]+", r"\1N", text)
    text = re.sub(r"\b\d{2}:\d{2}:\d{2}\b", "HH:MM:SS", text)
    text = re.sub(r"\t *[\d.]+\t", "\tN\t", text)  # job log times
    text = re.sub(r"in \d+(\.\d+)? s\b", "in N s", text)
    text = text.replace(tb.ssh_config, "SSH_CONFIG").replace(tb.root, "ROOT")
    return text


def run_all(checkout, tb, work):
    env = dict(os.environ, PYTHONPATH=checkout, XDG_CONFIG_HOME=os.path.join(work, "xdg-empty"))
    env.pop("CLSTR_SSH", None)
    env.pop("CLSTR_PROFILES", None)
    jobs = os.path.join(work, "jobs")
    with open(jobs, "w") as f:
        f.write("".join(j + "\n" for j in JOBS))
    out = {}
    base = [sys.executable, "-m", "clstr", "--ssh", tb.ssh, "--connect-timeout", "3"]
    for name, args in RUNS.items():
        joblog, js = os.path.join(work, f"{name}.log"), os.path.join(work, f"{name}.json")
        for path in (joblog, js):
            if os.path.exists(path):
                os.unlink(path)
        argv = base + args + (["--joblog", joblog, "--json", js] + ([] if "-E" in args else ["--", jobs]))
        dry = subprocess.run(base + args + (["--dry-run"] + ([] if "-E" in args else ["--", jobs])), env=env,
                             capture_output=True, text=True, cwd=work, timeout=120)
        r = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=work, timeout=300)
        with open(js) as f:
            data = json.load(f)
        data["slowest"] = sorted(data["slowest"], key=lambda j: j["seq"])
        with open(joblog) as f:
            log = "".join(sorted(f.readlines()))
        out[name] = {
            "dry-run": dry.stdout + dry.stderr,
            "exit status": str(r.returncode),
            "stdout (sorted)": "".join(sorted(r.stdout.splitlines(keepends=True))),
            "summary": "".join(sorted(line for line in r.stderr.splitlines(keepends=True)
                                      if not line.startswith("clstr: node "))),
            "job log (sorted)": log,
            "json": json.dumps(data, indent=1, sort_keys=True),
        }
    resume = subprocess.run(base + ["-n", "n1", "--joblog", os.path.join(work, "node mode.log"), "--resume",
                                    "--dry-run", "--", jobs], env=env, capture_output=True, text=True, cwd=work)
    out["resume"] = {"dry-run": resume.stdout + resume.stderr}
    return {run: {k: normalize(v, tb, work) for k, v in parts.items()} for run, parts in out.items()}


def main(argv=None):
    old, new = (argv or sys.argv[1:])[:2]
    with tempfile.TemporaryDirectory(prefix="clstr-same-") as root:
        with Testbed(os.path.join(root, "tb"), count=4) as tb:
            results = {}
            for label, checkout in (("old", old), ("new", new)):
                work = os.path.join(root, label)
                os.makedirs(work)
                results[label] = run_all(os.path.abspath(checkout), tb, work)
    same = True
    for run, parts in results["old"].items():
        for part, text in parts.items():
            other = results["new"][run][part]
            if text != other:
                same = False
                print(f"## {run}: {part} differs")
                sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), other.splitlines(True), "old",
                                                           "new", n=1))
            else:
                print(f"{run}: {part}: identical ({len(text)} bytes)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
