"""clstr-report: the HTML page of a run's --json summary. Its structure is checked here
(one SVG bar per attempt, counts equal to the JSON's, absences marked); the page was also looked
at rendered by headless Chromium (docs/output.md, bench/report_page.py)."""
import json
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from clstr.report import CAUSES, MIN_MARKED, page


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each <title> (the bars' tooltips)."""

    def __init__(self):
        super().__init__()
        self.tags, self.titles, self._in_title = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.titles.append(data)

    def handle_endtag(self, tag):
        self._in_title = False

    def of(self, tag, cls):
        return [a for t, a in self.tags if t == tag and a.get("class") == cls]


def parse(text):
    e = Elements()
    e.feed(text)
    return e


def synthetic(njobs, nslots, seed=1):
    """A --json summary of njobs on nslots (5 a node), with failures, re-queued attempts and absences."""
    import random
    rnd = random.Random(seed)
    slots = [f"lab{n:03d}" for n in range(1, nslots // 5 + 1) for _ in range(5)]
    free, jobs, t0 = [0.0] * len(slots), [], 1795600000.0
    for seq in range(1, njobs + 1):
        attempts = []
        for k in range(1, 3):
            i = min(range(len(slots)), key=free.__getitem__)
            rt = rnd.uniform(1, 30)
            moved = k == 1 and rnd.random() < 0.03
            outcome = "requeued" if moved else ("succeeded" if rnd.random() > 0.02 else "failed")
            if outcome != "succeeded" and rnd.random() < 0.5:
                rt = 0.002  # a failure of 2 ms: a bar narrower than a pixel unless drawn wider
            connect = 0.3 if free[i] == 0.0 else 0.005  # a slot's first job opens its connection
            ending = rnd.choice(["exit", "timeout", "lost", "busy"]) if moved else (
                "ok" if outcome == "succeeded" else "exit")
            attempts.append({"node": slots[i], "slot": i, "attempt": k, "start": t0 + free[i], "runtime": rt,
                             "connect": connect, "began": connect, "ending": ending,
                             "exit": 1 if outcome != "succeeded" else 0, "outcome": outcome, "reason": ""})
            free[i] += rt + connect
            if not moved:
                break
        last = attempts[-1]
        jobs.append({"seq": seq, "command": f"./sim <{seq}> & \"x\"", "outcome": last["outcome"], "reason": "",
                     "node": last["node"], "exit": last["exit"], "runtime": last["runtime"], "attempts": attempts})
    nodes = {n: {"attempts": 0, "succeeded": 0, "retired": False, "reason": "", "configuration_error": False,
                 "out": []} for n in dict.fromkeys(slots)}
    nodes["lab002"]["out"] = [{"left": t0 + 50, "reason": "refused", "back": t0 + 90, "failed_probes": 1}]
    nodes["lab003"].update(retired=True, reason="connection lost",
                           out=[{"left": t0 + 70, "reason": "connection lost", "back": None, "failed_probes": 3}])
    counts = {"jobs": njobs, "not_run": 0, "skipped": 0,
              "succeeded": sum(j["outcome"] == "succeeded" for j in jobs),
              "failed": sum(j["outcome"] == "failed" for j in jobs)}
    return {"exit_status": 1, "counts": counts, "jobs": jobs, "nodes": nodes, "slots": slots,
            "started": t0, "ended": t0 + max(free), "command_line": ["clstr", "-p", "lab", "--json", "run.json",
                                                                     "jobs.txt"]}


def check_page(text, data):
    """The page's structure against its JSON: a bar per attempt, the counts, each absence."""
    e = parse(text)
    attempts = [(j["seq"], a["outcome"]) for j in data["jobs"] for a in j["attempts"]]
    bars = e.of("rect", "att")
    assert sorted((int(b["data-seq"]), b["data-outcome"]) for b in bars) == sorted(attempts)
    counts = next(a for t, a in e.tags if a.get("id") == "counts")
    for key, attr in (("jobs", "data-jobs"), ("succeeded", "data-succeeded"), ("failed", "data-failed"),
                      ("not_run", "data-not-run")):
        assert int(counts[attr]) == data["counts"][key]
    assert int(counts["data-attempts"]) == len(attempts)
    rows = {}
    for i, node in enumerate(data["slots"]):
        rows[node] = rows.get(node, 0) + 1
    outs = [(n, o) for n, info in data["nodes"].items() for o in info["out"]]
    assert len(e.of("rect", "out")) == sum(rows[n] for n, _ in outs)
    assert len(e.of("rect", "left")) == sum(rows[n] for n, _ in outs)
    assert len(e.of("rect", "back")) == sum(rows[n] for n, o in outs if o["back"] is not None)
    return e


def test_the_page_of_a_large_run_has_a_bar_per_attempt_and_its_counts():
    data = synthetic(10_000, 500)
    text = page(data)
    e = check_page(text, data)
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert len(text) < 6_000_000  # a page a browser opens at once
    assert any(t.startswith("job 17 attempt 1 on lab") for t in e.titles)  # each bar's tooltip
    assert any("lab003 out: connection lost" in t for t in e.titles)
    assert '&lt;17&gt; &amp; &quot;x&quot;' in text  # commands are escaped, never markup


def test_the_report_of_a_real_run_with_failures_and_retirements(clstr, tmp_path, testbed):
    n2 = testbed.addr["n2"]
    jobs = [f"echo {i}" for i in range(12)] + [f'case "$SSH_CONNECTION" in *" {n2} "*) exit 1;; esac; echo f',
                                               "exit 7"]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    r = clstr("--json", "run.json", "--reprobe", "0", "jobs", "-n", "2/n1", "-n", "n2", "-n", "n3", "-n", "refused")
    assert r.returncode == 1, r.stderr
    data = json.loads((tmp_path / "run.json").read_text())
    html = subprocess.run([sys.executable, "-m", "clstr.report", "run.json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert html.returncode == 0 and html.stderr == ""
    e = check_page(html.stdout, data)
    outcomes = {b["data-outcome"] for b in e.of("rect", "att")}
    assert {"succeeded", "requeued", "failed"} <= outcomes
    assert data["nodes"]["refused"]["retired"] and e.of("rect", "out")  # the retired node is shaded out
    nodes_table = html.stdout.split('<table id="nodes">')[1].split("</table>")[0]
    assert "<td>refused</td>" in nodes_table and "refused (stayed out)" in nodes_table


@pytest.mark.parametrize("content,message", [
    (None, "run.json: cannot read: No such file or directory"),
    ("{\n  not json", "run.json:2: not JSON"),
    ('{"jobs": 3}', "run.json: not a clstr --json summary"),
    ("[]", "run.json: not a clstr --json summary"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, message):
    if content is not None:
        (tmp_path / "run.json").write_text(content)
    r = subprocess.run([sys.executable, "-m", "clstr.report", "run.json"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"clstr-report: {message}")


HOSTILE = '"><script>alert(1)</script><svg onload=alert(2)><b x=\'1'


def hostile(data):
    """``data`` with every string the page shows made a script injection, keys included."""
    def walk(value, key=None):
        if isinstance(value, dict):
            return {(k + HOSTILE if key == "nodes" else k): walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str):
            return value + HOSTILE
        return value
    return walk(data)


def test_hostile_values_in_every_field_render_no_markup_of_their_own():
    data = synthetic(40, 20)
    failed = next(a for j in data["jobs"] for a in j["attempts"] if a["outcome"] != "succeeded")
    failed.update(stderr="its last line", ending="never ran", connect=3.0)  # the tail and the waits, hostile too
    data = hostile(data)
    text = page(data, title="t" + HOSTILE)
    assert "<script" not in text and "onload=" not in text.replace("onload=alert", "")
    e = parse(text)
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "b", "span", "div", "svg", "line",
               "text", "rect", "path", "table", "tr", "th", "td", "code", "ul", "li", "pre"}
    assert {t for t, _ in e.tags} <= allowed
    assert not [a for t, a in e.tags if t == "b" and a]  # the injected <b x=...> never became a tag
    assert not [a for _, a in e.tags if any(k.startswith("on") for k in a)]
    check_page(text, data)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(nodes=[1, 2]), "nodes must be an object, not [1, 2]"),
    (lambda d: d["nodes"].update(lab001="up"), 'nodes["lab001"] must be an object, not "up"'),
    (lambda d: d["nodes"]["lab002"].update(out=["x"]), 'nodes["lab002"].out[0] must be an object, not "x"'),
    (lambda d: d["counts"].update(jobs="<script>"), 'counts.jobs must be a whole number, not "<script>"'),
    (lambda d: d["jobs"][0].update(seq="1<script>"), 'jobs[0].seq must be a whole number, not "1<script>"'),
    (lambda d: d["jobs"][1]["attempts"][0].update(start="x"), "jobs[1].attempts[0].start must be a number"),
    (lambda d: d["jobs"][1]["attempts"][0].update(slot=True), "jobs[1].attempts[0].slot must be a whole number"),
    (lambda d: d["jobs"][2].update(attempts={}), "jobs[2].attempts must be a list"),
    (lambda d: d.update(slots="abc"), 'slots must be a list, not "abc"'),
])
def test_a_summary_of_the_wrong_shape_is_one_line_and_exit_2(tmp_path, change, message):
    data = synthetic(40, 20)
    change(data)
    (tmp_path / "run.json").write_text(json.dumps(data))
    r = subprocess.run([sys.executable, "-m", "clstr.report", "run.json"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.startswith(f"clstr-report: run.json: not a clstr --json summary: {message}"), r.stderr
    assert r.stderr.count("\n") == 1


def test_what_went_wrong_comes_first_and_no_failure_hides():
    data = synthetic(10_000, 500)
    text = page(data)
    e = parse(text)
    bad = [j for j in data["jobs"] if j["outcome"] in ("failed", "not run")]
    assert len(bad) > 100
    # the failures section comes before the timeline, a row per failed job with every attempt
    assert text.index('id="failures"') < text.index('id="timeline"')
    rows = [a for t, a in e.tags if t == "tr" and a.get("class") == "failure"]
    assert [int(r["data-seq"]) for r in rows] == [j["seq"] for j in bad][:500]
    section = text.split('<table id="failures"')[1].split("</table>")[0]
    j = bad[0]
    for a in j["attempts"]:
        assert f"{a['attempt']}. {a['node']}: " in section
    # every failed or re-queued attempt is drawn at a visible width, and marked in the strip above
    marked = [b for b in e.of("rect", "att") if b["data-outcome"] in ("failed", "requeued")]
    assert marked and min(float(b["width"]) for b in marked) >= MIN_MARKED
    assert len(e.of("path", "mark")) == len(marked)
    tiny = [a for j in data["jobs"] for a in j["attempts"] if a["runtime"] < 0.01]
    assert tiny  # the failures of 2 ms are among them
    # re-queues coloured by whose fault it was: the job's (exit, timeout) or the node's (lost, busy)
    fills = {b["fill"] for b in e.of("rect", "att") if b["data-outcome"] == "requeued"}
    assert fills == {CAUSES["job"][0], CAUSES["node"][0]}
    # a lead-in for the opening of each slot's connection
    assert len(e.of("rect", "lead")) >= 500


def test_rows_grouped_by_node_and_the_header_tells_when_and_how():
    data = synthetic(300, 20)
    data["slots"] = [data["slots"][i] for i in (0, 5, 1, 6, 2, 7, 3, 8, 4, 9)] + data["slots"][10:]  # scattered
    for j in data["jobs"]:
        for a in j["attempts"]:
            a["slot"] = data["slots"].index(a["node"]) if a["slot"] < 10 else a["slot"]
    text = page(data)
    e = parse(text)
    svg = text.split('<svg id="timeline"')[1].split("</svg>")[0]
    import re
    labels = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    # a node's slots together, numbered, though the run's slot numbers scattered them
    assert labels[:6] == ["lab001 #1", "lab001 #2", "lab001 #3", "lab001 #4", "lab001 #5", "lab002 #1"]
    timeline = next(a for t, a in e.tags if t == "svg" and a.get("id") == "timeline")
    assert "viewbox" in timeline and "width" not in timeline  # fits the window's width (names lowercased)
    assert "<code>clstr -p lab --json run.json jobs.txt</code>" in text
    assert re.search(r'<p id="when">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', text)
    table = text.split('<table id="nodes">')[1].split("</table>")[0]
    assert "<th>median runtime</th>" in table


def test_a_slow_node_shows_itself_in_the_node_table():
    data = synthetic(400, 20)
    for j in data["jobs"]:
        for a in j["attempts"]:
            if a["node"] == "lab004":
                a["runtime"] *= 10
    table = page(data).split('<table id="nodes">')[1].split("</table>")[0]
    slow = [row for row in table.split("<tr>") if '<b class="slow">' in row]
    assert len(slow) == 1 and slow[0].startswith("<td>lab004</td>")


def test_the_page_says_what_ran_every_job_shows_and_time_lost_to_a_hung_node_is_named():
    data = synthetic(300, 20)
    for j in data["jobs"][:50]:
        for a in j["attempts"]:
            a["runtime"] = 0.0  # jobs of no time at all
    hung = data["jobs"][60]["attempts"][0]
    hung.update(node="blackhole1", outcome="requeued", ending="never ran", connect=9.8, began=9.8,
                reason="node unreachable: timed out")
    data["jobs"][60]["attempts"].append(dict(hung, node="lab001", attempt=2, outcome="succeeded", ending="ok",
                                             connect=0.01, began=0.01, reason=""))
    text = page(data)
    e = parse(text)
    assert "<title>clstr run: clstr -p lab --json run.json jobs.txt</title>" in text  # what ran, not a file name
    bars = e.of("rect", "att")
    assert min(float(b["width"]) for b in bars) >= 1.5  # a job of 0.0 s is there to see
    assert all(b.get("data-narrow") == "1" for b in bars if float(b["width"]) < 3)  # and not hidden by its outline
    waits = next(a for t, a in e.tags if a.get("id") == "waits")
    assert float(waits["data-seconds"]) == 9.8
    assert "job 61 waited 9.8s on blackhole1 (node unreachable: timed out)" in text
    keys = text.count('class="key"')
    assert keys <= 7, keys  # a legend one can hold in mind
    assert "failed or moved: its attempts that did not succeed" in text and "busy: the time its slots" in text


def test_a_summary_without_a_command_line_is_titled_by_its_file(tmp_path):
    data = synthetic(20, 20)
    del data["command_line"]
    (tmp_path / "run.json").write_text(json.dumps(data))
    r = subprocess.run([sys.executable, "-m", "clstr.report", "run.json"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "<title>clstr run: run.json</title>" in r.stdout
    assert 'id="waits"' not in r.stdout  # no connection was waited for in vain: nothing said


def test_a_failed_jobs_last_stderr_lines_are_kept_and_shown(clstr, tmp_path, testbed):
    lines = "".join(f"echo line{i} >&2; " for i in range(1, 9))
    jobs = ["echo warning only >&2; true", f"{lines}printf 'no input: %s\\n' x.dat >&2; exit 7",
            "head -c 100000 /dev/zero | tr '\\0' e >&2; exit 3"]
    (tmp_path / "jobs").write_text("".join(j + "\n" for j in jobs))
    r = clstr("--json", "run.json", "--job-failures", "job", "jobs", "-n", "n1", "--output-dir", "out")
    assert r.returncode == 1, r.stderr
    data = json.loads((tmp_path / "run.json").read_text())
    ok, seven, long = (j["attempts"][-1] for j in data["jobs"])
    assert "stderr" not in ok  # a job that succeeded keeps none, whatever it wrote
    assert seven["stderr"] == "line5\nline6\nline7\nline8\nno input: x.dat"  # the last five lines
    assert long["stderr"].endswith("...") and len(long["stderr"]) <= 240  # one long line, cut, the memory bounded
    assert (tmp_path / "out" / "2.err").read_text().startswith("line1\n")  # the files keep everything
    html = subprocess.run([sys.executable, "-m", "clstr.report", "run.json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    section = html.stdout.split('<table id="failures"')[1].split("</table>")[0]
    assert '<pre class="tail">line5\nline6\nline7\nline8\nno input: x.dat</pre>' in section
