"""The report page of a large run: its size, the time to write it, and the time headless Chromium
takes to draw it (against an empty page, interleaved, median of 3), with a screenshot to look at.

    python3 bench/report_page.py [--jobs 10000] [--slots 500] [--out /tmp/clstr-report-bench]

The run is synthetic (tests/test_report.py's: 3% of attempts re-queued for each cause, 2% of
jobs failed, half of the failures 2 ms long, two nodes out for a while). Chromium is Debian's
`chromium` (apt-get install chromium); without it the page is still written and measured.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

from test_report import synthetic  # noqa: E402

from clstr.report import page  # noqa: E402


def shoot(chromium, url, png, width):
    """Seconds headless Chromium takes to load ``url`` and write its screenshot."""
    t = time.monotonic()
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},1800", f"--screenshot={png}", url],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=300)
    return time.monotonic() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--slots", type=int, default=500)
    p.add_argument("--out", default="/tmp/clstr-report-bench")
    p.add_argument("--width", type=int, default=1400, help="the window's width in px")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    data = synthetic(args.jobs, args.slots)
    writes = []
    for _ in range(3):
        t = time.monotonic()
        text = page(data, title=f"clstr run: {args.jobs} jobs on {args.slots} slots (synthetic)")
        writes.append(time.monotonic() - t)
    html = os.path.join(args.out, "run.html")
    with open(html, "w", encoding="utf-8") as f:
        f.write(text)
    blank = os.path.join(args.out, "blank.html")
    with open(blank, "w") as f:
        f.write("<!DOCTYPE html><html><body></body></html>\n")
    failed = sum(j["outcome"] == "failed" for j in data["jobs"])
    attempts = sum(len(j["attempts"]) for j in data["jobs"])
    print(f"report page: {args.jobs} jobs, {attempts} attempts ({failed} failed jobs) on {args.slots} slots")
    print("| page | written in (median of 3) | size |")
    print("|---|---|---|")
    print(f"| {html} | {statistics.median(writes):.2f} s [{min(writes):.2f}-{max(writes):.2f}] | "
          f"{len(text.encode()) / 1e6:.1f} MB |")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("chromium: not installed (apt-get install chromium): no render time, no screenshot")
        return 0
    full, empty = [], []
    for _ in range(3):  # interleaved: the page, then an empty page (Chromium's own start)
        full.append(shoot(chromium, "file://" + html, os.path.join(args.out, "run.png"), args.width))
        empty.append(shoot(chromium, "file://" + blank, os.path.join(args.out, "blank.png"), args.width))
    draw = [a - b for a, b in zip(full, empty)]
    print(f"| Chromium, load and screenshot | the page {statistics.median(full):.2f} s "
          f"[{min(full):.2f}-{max(full):.2f}] | an empty page {statistics.median(empty):.2f} s; "
          f"drawing the page: {statistics.median(draw):.2f} s |")
    print(f"screenshot: {os.path.join(args.out, 'run.png')} ({args.width} px wide)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
