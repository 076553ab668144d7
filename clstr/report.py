"""clstr-report RUN.json > run.html: one self-contained HTML page of a run, from its --json summary.

The page needs no network and no script: a timeline (an SVG row per node slot, a bar
per attempt coloured by its outcome, each bar's tooltip naming job, command, exit and
runtime; a node's time out of the run shaded, its leaving and return marked), jobs
complete over time with the running count, a table per node and the slowest jobs.
Bars are plain SVG rects with a <title>: 10,000 attempts on 500 slots stay a few MB
that a browser draws at once.
"""
import html
import json
import shlex
import sys
import time

from .status import duration
from .words import counted, cut, noun

COLOURS = {"succeeded": "#2e9d4f", "failed": "#d1383d", "requeued": "#f0a030", "interrupted": "#8a8a8a",
           "not run": "#8a8a8a"}
# a re-queued attempt is coloured by whose fault it was: the job's (its exit, a time limit) or the
# node's (ssh, a busy sshd, a file); the exact cause (its "ending" in --json) is in its tooltip
CAUSES = {"job": ("#f0a030", "moved on after its own exit or a time limit"),
          "node": ("#8d5b3e", "moved on: its node or connection failed")}
CAUSE_OF = {"exit": "job", "timeout": "job", "idle timeout": "job", "straggler": "job",
            "lost": "node", "never ran": "node", "worker died": "node", "busy": "node", "transfer": "node"}
LEAD = "#cfd8e3"  # an attempt's lead-in: opening its connection (and sending its files) before the job
MIN_MARKED = 3.0  # px: a failed or re-queued attempt is never drawn narrower (a 2 ms failure shows)
MIN_SHOWN = 1.5  # px: nor any other (a job of 0.0 s is there to see)
WAITS_LISTED = 5  # the longest waits for a connection that never came up, named
FAILURES_LISTED = 500  # the failures section lists this many jobs, then says how many more
WIDTH = 1000  # the plot's width in px
LEFT = 140  # room for the row labels
SLOWEST = 15


class ReportError(Exception):
    """The input is not a --json summary clstr can draw."""


def load(path):
    """The --json summary at ``path`` (``-``: stdin) as a dict; ReportError with one line if it is not one."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        raise ReportError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not text (a --json summary is JSON)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}:{e.lineno}: not JSON ({e.msg}); give the file clstr --json wrote") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list) or not isinstance(data.get("counts"), dict):
        raise ReportError(f"{path}: not a clstr --json summary (no jobs and counts)")
    try:
        check(data)
    except ShapeError as e:
        raise ReportError(f"{path}: not a clstr --json summary: {e}") from None
    return data


class ShapeError(Exception):
    """A value of the summary is not of the type clstr writes there."""


def _number(value, where, none=False):
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (
            float("inf"), float("-inf")):
        raise ShapeError(f"{where} must be a number, not {json.dumps(value)[:40]}")


def _whole(value, where, none=False):
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"{where} must be a whole number, not {json.dumps(value)[:40]}")


def _text(value, where):
    if not isinstance(value, str):
        raise ShapeError(f"{where} must be a string, not {json.dumps(value)[:40]}")


def _mapping(value, where):
    if not isinstance(value, dict):
        raise ShapeError(f"{where} must be an object, not {json.dumps(value)[:40]}")


def _items(value, where):
    if not isinstance(value, list):
        raise ShapeError(f"{where} must be a list, not {json.dumps(value)[:40]}")
    return enumerate(value)


def check(data):
    """Every value the page draws has the type clstr writes there (ShapeError naming the first that
    has not): numbers are then formatted and strings escaped, and nothing else reaches the page."""
    for key in ("jobs", "succeeded", "failed", "not_run"):
        _whole(data["counts"].get(key, 0), f"counts.{key}")
    _whole(data.get("exit_status"), "exit_status", none=True)
    for key in ("started", "ended"):
        _number(data.get(key), key, none=True)
    for i, node in _items(data.get("slots") or [], "slots"):
        _text(node, f"slots[{i}]")
    for i, word in _items(data.get("command_line") or [], "command_line"):
        _text(word, f"command_line[{i}]")
    for i, j in _items(data["jobs"], "jobs"):
        where = f"jobs[{i}]"
        _mapping(j, where)
        _whole(j.get("seq"), f"{where}.seq")
        for key in ("command", "outcome", "reason"):
            _text(j.get(key), f"{where}.{key}")
        for k, a in _items(j.get("attempts"), f"{where}.attempts"):
            at = f"{where}.attempts[{k}]"
            _mapping(a, at)
            for key in ("node", "outcome", "reason"):
                _text(a.get(key), f"{at}.{key}")
            for key in ("start", "runtime"):
                _number(a.get(key), f"{at}.{key}")
            for key in ("connect", "began"):
                _number(a.get(key), f"{at}.{key}", none=True)
            for key in ("ending", "stderr"):
                if a.get(key) is not None:
                    _text(a[key], f"{at}.{key}")
            _whole(a.get("attempt"), f"{at}.attempt")
            _whole(a.get("exit"), f"{at}.exit", none=True)
            _whole(a.get("slot", -1), f"{at}.slot")
    nodes = data.get("nodes") or {}
    _mapping(nodes, "nodes")
    for name, info in nodes.items():
        where = f"nodes[{json.dumps(name)[:40]}]"
        _mapping(info, where)
        for k, out in _items(info.get("out") or [], f"{where}.out"):
            at = f"{where}.out[{k}]"
            _mapping(out, at)
            _text(out.get("reason"), f"{at}.reason")
            _number(out.get("left"), f"{at}.left")
            _number(out.get("back"), f"{at}.back", none=True)


def _esc(text):
    return html.escape(str(text), quote=True)


def _secs(seconds):
    return duration(seconds, unit="")


def colour(a):
    """An attempt's colour: its outcome's, a re-queue's by its cause."""
    if a["outcome"] == "requeued":
        return CAUSES[CAUSE_OF.get(a.get("ending") or "exit", "job")][0]
    return COLOURS.get(a["outcome"], "#555")


class Run:
    """The figures of a --json summary that the page draws."""

    def __init__(self, data):
        self.data = data
        self.attempts = []
        self.last = []  # the last attempt of each job that completed (succeeded or failed)
        for j in data["jobs"]:
            mine = [dict(a, seq=j["seq"], command=j["command"]) for a in j["attempts"]]
            self.attempts += mine
            if mine and j["outcome"] in ("succeeded", "failed"):
                self.last.append(mine[-1])
        self.slots = list(data.get("slots") or [])
        known = {}
        for a in self.attempts:  # a summary without slots (older clstr): a row per node
            if not isinstance(a.get("slot"), int) or a["slot"] < 0 or a["slot"] >= len(self.slots):
                a["slot"] = known.setdefault(a["node"], len(self.slots) + len(known))
            # the job's own start: after the lead-in (opening the connection, sending files); a
            # summary without "began" (older clstr) has its runtime from the attempt's start
            a["lead"] = a.get("began") or 0.0
            a["end"] = a["start"] + a["lead"] + a["runtime"]
        self.slots += sorted(known, key=known.get)
        # rows grouped by node, in the order the nodes first appear, each slot with its number there
        by_node = {}
        for i, node in enumerate(self.slots):
            by_node.setdefault(node, []).append(i)
        self.row_of, self.labels = {}, []
        for node, idx in by_node.items():
            for k, i in enumerate(idx, 1):
                self.row_of[i] = len(self.labels)
                self.labels.append((node, k if len(idx) > 1 else None))
        self.rows_of_node = {node: [self.row_of[i] for i in idx] for node, idx in by_node.items()}
        starts = [a["start"] for a in self.attempts]
        self.t0 = data.get("started") or (min(starts) if starts else 0.0)
        self.t1 = max([a["end"] for a in self.attempts] + [data.get("ended") or self.t0])
        self.span = max(self.t1 - self.t0, 1e-3)
        self.nodes = data.get("nodes") or {}

    def x(self, t):
        return LEFT + (t - self.t0) / self.span * WIDTH

    def completions(self):
        """(time, jobs complete) steps: a job completes when its last attempt ends."""
        ends = sorted(a["end"] for a in self.last)
        return [(t, i + 1) for i, t in enumerate(ends)]

    def running(self, samples=WIDTH // 3):
        """(time, attempts running) at ``samples`` even times: the count between two attempts of
        a slot drops for an instant, which a line through every event would show as noise."""
        events = sorted([(a["start"], 1) for a in self.attempts] + [(a["end"], -1) for a in self.attempts])
        out, n, i = [], 0, 0
        for k in range(samples + 1):
            t = self.t0 + self.span * k / samples
            while i < len(events) and events[i][0] <= t:
                n += events[i][1]
                i += 1
            out.append((t, n))
        return out


def _marked(a):
    return a["outcome"] not in ("succeeded", "interrupted")


def timeline(run):
    """The SVG of the attempts: a strip of marks on top (one per failed or re-queued attempt, so
    that none hides in a dense timeline), then a row per slot, grouped by node."""
    rows = len(run.labels)
    row = max(1.4, min(14.0, 700.0 / max(rows, 1)))
    strip = 14  # the marks' strip
    top = strip + 10  # room for the first row's label below the strip's
    height = top + rows * row + 30
    parts = [f'<svg id="timeline" class="{"tall" if row >= 4 else "thin"}" xmlns="http://www.w3.org/2000/svg" '
             f'viewBox="0 0 {LEFT + WIDTH + 20} {height:.0f}" font-size="11" font-family="sans-serif">']
    parts.append(_axis(run, top + rows * row, top))
    parts.append(f'<text x="{LEFT - 6}" y="{strip - 3}" text-anchor="end" fill="#d1383d">failures</text>')
    label_every = max(1, int(12 / row)) if row < 12 else 1
    for r, (node, k) in enumerate(run.labels):
        if r % label_every == 0:
            text = node if k is None else f"{node} #{k}"
            parts.append(f'<text x="{LEFT - 6}" y="{top + r * row + min(row, 12) * 0.8:.1f}" '
                         f'text-anchor="end">{_esc(text)}</text>')
    # a node's time out of the run: shaded over its rows, a red mark where it left, green where it came back
    marks = []
    for node, info in run.nodes.items():
        for out in info.get("out") or ():
            back = out.get("back")
            x0, x1 = run.x(out["left"]), run.x(back if back is not None else run.t1)
            for r in run.rows_of_node.get(node, ()):
                y = top + r * row
                tip = f"{node} out: {out['reason']}" + (f", back after {_secs(back - out['left'])}" if back else "")
                parts.append(f'<rect class="out" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 1):.1f}" '
                             f'height="{row:.1f}" fill="#f3d6d6"><title>{_esc(tip)}</title></rect>')
                marks.append(f'<rect class="left" x="{x0:.1f}" y="{y:.1f}" width="2" height="{row:.1f}" fill="#a00">'
                             f'<title>{_esc(node)} left: {_esc(out["reason"])}</title></rect>')
                if back is not None:
                    marks.append(f'<rect class="back" x="{x1:.1f}" y="{y:.1f}" width="2" height="{row:.1f}" '
                                 f'fill="#070"><title>{_esc(node)} came back</title></rect>')
    gap = 0.15 * row if row >= 4 else 0
    scale = WIDTH / run.span
    # the failed and re-queued last, over the others, never narrower than MIN_MARKED
    for a in sorted(run.attempts, key=_marked):
        y = top + run.row_of[a["slot"]] * row + gap
        h = row - 2 * gap
        x0 = run.x(a["start"])
        job = f"job {a['seq']} attempt {a['attempt']} on {a['node']}"
        if a["lead"] * scale >= 0.5:
            parts.append(f'<rect class="lead" x="{x0:.1f}" y="{y:.1f}" width="{a["lead"] * scale:.1f}" '
                         f'height="{h:.1f}" fill="{LEAD}"><title>{_esc(job)}: opening its connection'
                         f'{", sending its files" if a.get("sent") else ""}, {_secs(a["lead"])}</title></rect>')
        w = max(a["runtime"] * scale, MIN_MARKED if _marked(a) else MIN_SHOWN)
        tip = (f"{job}: {a['outcome']}" + (f" ({a['reason']})" if a.get("reason") else "")
               + f"\nexit {a['exit']}, ran {_secs(a['runtime'])}"
               + (f" after {_secs(a['connect'])} connecting" if a.get("connect") else "")
               + f"\n{a['command'][:300]}")
        narrow = ' data-narrow="1"' if w < 3 else ""  # no white outline to hide it
        parts.append(f'<rect class="att"{narrow} data-seq="{int(a["seq"])}" data-outcome="{_esc(a["outcome"])}" '
                     f'x="{x0 + a["lead"] * scale:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                     f'fill="{colour(a)}"><title>{_esc(tip)}</title></rect>')
        if _marked(a):
            xm = x0 + a["lead"] * scale + w / 2
            marks.append(f'<path class="mark" data-seq="{int(a["seq"])}" d="M{xm - 4:.1f},1H{xm + 4:.1f}L{xm:.1f},'
                         f'{strip - 1}Z" fill="{colour(a)}"><title>{_esc(tip)}</title></path>')
    parts += marks  # over the bars: a node that left mid-job still shows where
    parts.append("</svg>")
    return "".join(parts)


def _axis(run, bottom, top=0):
    ticks = []
    step = _tick_step(run.span)
    t = 0.0
    while t <= run.span + 1e-9:
        x = LEFT + t / run.span * WIDTH
        ticks.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#eee"/>'
                     f'<text x="{x:.1f}" y="{bottom + 14:.1f}" text-anchor="middle">{_secs(t)}</text>')
        t += step
    return "".join(ticks)


def _tick_step(span):
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400):
        if span / step <= 12:
            return step
    return span / 10


def progress(run):
    """Jobs complete over time (a step line) and the running count (a second one), one SVG."""
    h = 180
    done, running = run.completions(), run.running()
    total = max(len(run.data["jobs"]), 1)
    peak = max([n for _, n in running] + [1])

    def path(points, top):
        d, last = [f"M{LEFT},{h}"], h
        for t, n in points:
            y = h - n / top * (h - 10)
            d.append(f"H{run.x(t):.1f}V{y:.1f}")
            last = y
        d.append(f"H{LEFT + WIDTH}V{last:.1f}")
        return "".join(d)
    return (f'<svg id="progress" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {LEFT + WIDTH + 20} {h + 30}" '
            f'font-size="11" font-family="sans-serif">{_axis(run, h)}'
            f'<path d="{path(done, total)}" fill="none" stroke="#2e6fd1" stroke-width="2"/>'
            f'<path d="{path(running, peak)}" fill="none" stroke="#f0a030" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="14" text-anchor="end" fill="#2e6fd1">{counted(total, "job")}</text>'
            f'<text x="{LEFT - 6}" y="28" text-anchor="end" fill="#f0a030">{peak} running</text>'
            f'<text x="{LEFT - 6}" y="{h}" text-anchor="end">0</text></svg>')


def _median(values):
    values = sorted(values)
    n = len(values)
    return (values[n // 2] + values[(n - 1) // 2]) / 2 if n else None


def node_table(run):
    stats = {}
    for node in dict.fromkeys(run.slots):
        stats[node] = {"slots": run.slots.count(node), "attempts": 0, "succeeded": 0, "failed": 0, "time": 0.0,
                       "runtimes": []}
    for a in run.attempts:
        s = stats.setdefault(a["node"], {"slots": 0, "attempts": 0, "succeeded": 0, "failed": 0, "time": 0.0,
                                         "runtimes": []})
        s["attempts"] += 1
        s["time"] += a["runtime"]
        if a["outcome"] == "succeeded":
            s["succeeded"] += 1
            s["runtimes"].append(a["runtime"])
        elif a["outcome"] != "interrupted":
            s["failed"] += 1
    overall = _median([a["runtime"] for a in run.attempts if a["outcome"] == "succeeded"])
    rows = []
    for node, s in stats.items():
        info = run.nodes.get(node, {})
        outs = "; ".join(f"{_esc(o['reason'])}" + (f" (back after {_secs(o['back'] - o['left'])})"
                                                    if o.get("back") is not None else " (stayed out)")
                         for o in info.get("out") or ())
        state = "retired" if info.get("retired") else "up"
        if info.get("configuration_error"):
            state += " (configuration error)"
        median = _median(s["runtimes"])
        # a node whose jobs take twice the run's median, over five of them at least, shows itself
        slow = median is not None and overall and len(s["runtimes"]) >= 5 and median >= 2 * overall
        med = "" if median is None else (f'<b class="slow">{_secs(median)}</b>' if slow else _secs(median))
        rows.append(f"<tr><td>{_esc(node)}</td><td>{s['slots']}</td><td>{s['attempts']}</td><td>{s['succeeded']}</td>"
                    f"<td>{s['failed']}</td><td>{med}</td><td>{_secs(s['time'])}</td><td>{state}</td>"
                    f"<td>{outs}</td></tr>")
    return ('<table id="nodes"><tr><th>node</th><th>slots</th><th>attempts</th><th>succeeded</th>'
            '<th>failed or moved</th><th>median runtime</th><th>busy</th><th>at the end</th><th>out of the run</th></tr>'
            + "".join(rows) + "</table>"
            '<p class="note">failed or moved: its attempts that did not succeed, whether the job failed there or '
            'moved to another node; median runtime: of the jobs that succeeded there (in red: twice the run\'s); '
            'busy: the time its slots spent running jobs.</p>')


def slowest(run):
    """The jobs whose last attempt ran longest: their own runtimes, attempts cut off by a signal left out."""
    jobs = sorted((j for j in run.data["jobs"] if j["attempts"] and j["attempts"][-1]["outcome"] != "interrupted"
                   and j["attempts"][-1].get("ending") not in ("never ran", "busy")),
                  key=lambda j: -j["attempts"][-1]["runtime"])
    rows = "".join(f"<tr><td>{j['seq']}</td><td>{_esc(j['attempts'][-1]['node'])}</td>"
                   f"<td>{_secs(j['attempts'][-1]['runtime'])}</td><td>{_esc(j['outcome'])}</td>"
                   f"<td><code>{_esc(j['command'][:200])}</code></td></tr>" for j in jobs[:SLOWEST])
    return ('<table id="slowest"><tr><th>job</th><th>node</th><th>runtime</th><th>outcome</th><th>command</th></tr>'
            + rows + "</table>")


def _attempt_text(a):
    what = a["outcome"] if a["outcome"] != "requeued" else "moved on"
    tail = f'<pre class="tail">{_esc(a["stderr"])}</pre>' if a.get("stderr") else ""
    return (f"{_esc(a['node'])}: {_esc(what)}" + (f" ({_esc(a['reason'])})" if a.get("reason") else "")
            + f", {_secs(a['runtime'])}{tail}")


def failures(data):
    """What went wrong, first: every job failed or not run, with its reason and every attempt."""
    bad = [j for j in data["jobs"] if j["outcome"] in ("failed", "not run")]
    if not bad:
        return '<h2 id="failures-head">Failures</h2><p id="failures" data-count="0">None: every job succeeded.</p>'
    rows = []
    for j in bad[:FAILURES_LISTED]:
        nodes = list(dict.fromkeys(a["node"] for a in j["attempts"]))
        attempts = "".join(f"<div>{a['attempt']}. {_attempt_text(a)}</div>" for a in j["attempts"]) or "none"
        rows.append(f'<tr class="failure" data-seq="{int(j["seq"])}"><td>{j["seq"]}</td>'
                    f'<td><code>{_esc(j["command"][:300])}</code></td><td>{_esc(", ".join(nodes))}</td>'
                    f'<td>{_esc(j["outcome"])}</td><td>{_esc("" if j.get("exit") is None else j["exit"])}</td>'
                    f'<td>{_esc(j["reason"])}</td><td>{attempts}</td></tr>')
    more = len(bad) - FAILURES_LISTED
    return (f'<h2 id="failures-head">Failures: {counted(len(bad), "job")} failed or not run</h2>'
            '<div class="scroll short">'
            f'<table id="failures" data-count="{len(bad)}"><tr><th>job</th><th>command</th><th>node(s)</th>'
            '<th>outcome</th><th>exit</th><th>why</th><th>attempts (with the last lines each wrote to stderr)</th></tr>'
            + "".join(rows) + "</table></div>"
            + (f"<p>and {more} more (the --json summary has them all)</p>" if more > 0 else ""))


def waits(run):
    """Time spent waiting for connections that never came up (a hung or refusing node), said:
    the bars show it, this names it."""
    lost = sorted((a for a in run.attempts if a.get("ending") in ("never ran", "busy") and (a.get("connect") or 0) >= 0.5),
                  key=lambda a: -a["connect"])
    if not lost:
        return ""
    total = sum(a["connect"] for a in lost)
    named = "; ".join(f"job {a['seq']} waited {_secs(a['connect'])} on {_esc(a['node'])}"
                      + (f" ({_esc(a['reason'])})" if a.get("reason") else "") for a in lost[:WAITS_LISTED])
    more = len(lost) - WAITS_LISTED
    return (f'<p id="waits" data-seconds="{total:.3f}">{_secs(total)} waiting for connections that never came up, '
            f'in {counted(len(lost), "attempt")}: {named}' + (f"; and {more} more" if more > 0 else "") + ".</p>")


def title_of(data, fallback):
    """What ran, in a line: the command line (cut), else ``fallback``."""
    argv = data.get("command_line")
    if not argv:
        return fallback
    return "clstr run: " + cut(shlex.join(argv), 100)


def header(data, run):
    """The run's date, duration and command line."""
    started = data.get("started")
    try:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)) if started else "date unknown"
    except (OverflowError, OSError, ValueError):
        when = "date unknown"
    argv = data.get("command_line")
    line = f'<p id="command"><code>{_esc(shlex.join(argv))}</code></p>' if argv else ""
    return f'<p id="when">{_esc(when)}, {_esc(_secs(run.span))}</p>{line}'


def page(data, title=None):
    """The HTML page of a --json summary (a dict); its title, unless given, says what ran."""
    run = Run(data)
    title = title or title_of(data, "clstr run")
    c = data["counts"]
    legend = "".join(f'<span class="key" style="background:{col}"></span>{name} '
                     for name, col in COLOURS.items() if name not in ("not run", "requeued"))
    legend += "".join(f'<span class="key" style="background:{col}"></span>{what} ' for col, what in CAUSES.values())
    legend += f'<span class="key" style="background:{LEAD}"></span>opening the connection '
    retired = sum(1 for n in run.nodes.values() if n.get("retired"))
    came_back = sum(1 for n in run.nodes.values() for o in n.get("out") or () if o.get("back") is not None)
    summary = (f'<p id="counts" data-jobs="{c.get("jobs", 0)}" data-succeeded="{c.get("succeeded", 0)}" '
               f'data-failed="{c.get("failed", 0)}" data-not-run="{c.get("not_run", 0)}" '
               f'data-attempts="{len(run.attempts)}">'
               f'<b>{c.get("jobs", 0)}</b> {noun(c.get("jobs", 0), "job")}: <b>{c.get("succeeded", 0)}</b> succeeded, '
               f'<b>{c.get("failed", 0)}</b> failed, <b>{c.get("not_run", 0)}</b> not run; '
               f'{counted(len(run.attempts), "attempt")} on {counted(len(run.slots), "slot")} of '
               f'{counted(len(dict.fromkeys(run.slots)), "node")} in {_secs(run.span)}; '
               f'{counted(retired, "node")} retired at the end, {counted(came_back, "return")}. '
               f'Exit status {_esc(data.get("exit_status"))}.</p>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.1em; margin-top: 1.6em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }}
svg {{ width: 100%; height: auto; display: block; }}
#failures td:first-child {{ color: #d1383d; font-weight: bold; }}
.key {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 10px; vertical-align: middle; }}
svg.tall rect.att {{ stroke: #fff; stroke-width: 0.5; }}
svg.tall rect.att[data-narrow] {{ stroke: none; }}
p.note {{ font-size: 0.85em; color: #555; }}
pre.tail {{ margin: 2px 0 4px 1em; font-size: 0.9em; color: #555; white-space: pre-wrap; }}
rect.att:hover {{ stroke: #000; stroke-width: 1; }}
b.slow {{ color: #d1383d; }}
.scroll {{ max-height: 80vh; overflow-y: auto; border: 1px solid #eee; }}
.scroll.short {{ max-height: 35vh; display: inline-block; }}
</style></head><body>
<h1>{_esc(title)}</h1>
{header(data, run)}
{summary}
{waits(run)}
{failures(data)}
<h2>Timeline: a row per node slot, grouped by node; a bar per attempt (hover for the job)</h2>
<p>{legend}<span class="key" style="background:#f3d6d6"></span>node out of the run</p>
<div class="scroll">{timeline(run)}</div>
<h2>Jobs complete over time (blue), attempts running (orange)</h2>
{progress(run)}
<h2>Nodes</h2>
{node_table(run)}
<h2>Slowest jobs (their own runtimes, opening the connection apart)</h2>
{slowest(run)}
</body></html>
"""


def build_parser():
    import argparse
    p = argparse.ArgumentParser(prog="clstr-report", description="Write an HTML page of a clstr run, from the "
                                "JSON summary that clstr --json FILE wrote, to stdout.")
    p.add_argument("json", metavar="RUN.json", help="the --json summary of a run ('-': stdin)")
    p.add_argument("--title", default=None, help="the page's title (default: the run's command line, else "
                   "clstr run: RUN.json)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        data = load(args.json)
        text = page(data, args.title or title_of(data, f"clstr run: {args.json}"))
    except ReportError as e:
        sys.stderr.write(f"clstr-report: {e}\n")
        return 2
    except (KeyError, TypeError, ValueError) as e:
        sys.stderr.write(f"clstr-report: {args.json}: not a clstr --json summary ({type(e).__name__}: {e})\n")
        return 2
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        return 1
    return 0


def entry():
    sys.exit(main())


if __name__ == "__main__":
    entry()
