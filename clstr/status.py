"""The status line (``--status``): its text, and the rate and ETA it shows."""
import time

from .words import counted, noun

def duration(seconds, unit=" ", minutes=True, tenths=True):
    """``seconds`` as people read a duration: the one formatter of every time clstr prints.

    From an hour ``1h02m`` and from a minute ``3m05s`` (with ``minutes``), under 10 s ``4.2 s``
    (with ``tenths``; whole seconds otherwise), else ``12 s``; ``unit`` goes before the ``s`` of
    the last two (" " in sentences, "" in tight places: an ETA, a page's axis).
    """
    seconds = max(0.0, seconds)
    if not tenths:
        seconds = int(round(seconds))
    if minutes and seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    if minutes and seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}{unit.strip()}s"
    if tenths and seconds < 10:
        return f"{seconds:.1f}{unit}s"
    return f"{seconds:.0f}{unit}s"


def status_line(complete, total, running, slots, failed=0, retired=0, rate=None, eta=None, unit="nodes",
                interrupted=None, succeeded=None):
    """The original clstr's line, e.g. ``110 of 556 jobs complete, 176 of 176 nodes running jobs.``

    ``slots``: the run's slots, retired ones included (the count of the retired nodes follows);
    ``unit``: "nodes" as the original said it where each node has one slot, else "slots";
    ``interrupted``: once the run is interrupted, how many jobs it cut off (with ``succeeded``,
    the line then tells the run's end as it is).
    """
    if interrupted is not None:
        line = (f"{complete} of {total} {noun(total, 'job')} complete: {succeeded} succeeded, {failed} failed, "
                f"{interrupted} interrupted, {running} of {slots} {unit} running jobs.")
        failed = 0
    else:
        line = f"{complete} of {total} {noun(total, 'job')} complete, {running} of {slots} {unit} running jobs."
    extra = []
    if failed:
        extra.append(f"{failed} failed")
    if retired:
        extra.append(f"{counted(retired, 'node')} retired")
    if rate is not None:
        extra.append(f"{rate:.1f} jobs/s")
    if eta is not None:
        extra.append(f"ETA {duration(eta, unit='', tenths=False)}")
    if extra:
        line += " " + ", ".join(extra) + "."
    return line


class Rate:
    """Jobs per second since the first completion, and the ETA it implies."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.t0 = clock()

    def figures(self, complete, total):
        elapsed = self.clock() - self.t0
        if complete == 0 or elapsed <= 0:
            return None, None
        rate = complete / elapsed
        return rate, (total - complete) / rate
