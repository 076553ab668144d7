"""How a run stops: the signals it heard, a --halt, and the ending of its running attempts.

A first Ctrl-C, SIGTERM, SIGHUP (or the reader of stdout gone: SIGPIPE) interrupts the run: no
job starts, every running ssh on the slot board gets TERM, KILL INTERRUPT_GRACE seconds later, a
second signal KILLs at once; --halt now does the same, --halt soon lets the running ones finish.
Every kind of slot is told to stop its attempts (a gateway ends its own), and of an attempt that
has not reported OVERDUE seconds after the KILL (slots.py: ``stop``, ``overdue``). SIGUSR1 lists
the running jobs. The supervisor owns one and asks it what is due.
"""
import os
import signal

from .words import counted

INTERRUPT_GRACE = 2.0  # TERM to KILL for running ssh when interrupted
OVERDUE = 1.0  # after the KILL: how long an attempt gets to report before its kind is told (slots.py)


class Stopping:
    """``sched``: the Scheduler; ``board``: the slot board (each running ssh's pid); ``kinds``: the
    supervisor's kinds of slot (its list, as it grows); ``clock``; ``log``; ``dump()``: say what runs."""

    def __init__(self, sched, board, kinds, clock, log, dump):
        self.sched = sched
        self.board = board
        self.kinds = kinds
        self.clock = clock
        self.log = log
        self.dump = dump
        self.signals = []  # heard, not yet handled
        self.signal = None  # the one that stopped the run
        self.kill_at = None  # when interrupted (or halted now): when TERM turns to KILL
        self.halt_said = False
        self.killed = set()
        self.ending = False  # the kinds were told to stop their attempts

    def heard(self, sig):
        self.signals.append(sig)

    def handle(self):
        """Act on the signals heard and on a --halt: interrupt, TERM, KILL when due."""
        while self.signals:
            sig = self.signals.pop(0)
            if sig == signal.SIGUSR1:
                self.dump()
                continue
            if self.signal is None:
                self.signal = sig
                self.sched.interrupt("interrupted")
                self.kill_at = self.clock() + INTERRUPT_GRACE
                if sig != signal.SIGPIPE:
                    self.log(f"{signal.Signals(sig).name}: stopping, ending {self.sched.busy} running jobs")
            else:
                self.kill_at = self.clock()  # a second signal: no grace
        halted = self.sched.halted
        if halted is not None and not self.halt_said:
            self.halt_said = True
            busy = self.sched.busy
            if self.sched.interrupted == halted and self.kill_at is None:  # --halt now
                self.kill_at = self.clock() + INTERRUPT_GRACE
                self.log(f"{halted}: no job starts now, ending {counted(busy, 'running job')}")
            else:
                self.log(f"{halted}: no job starts now" + (
                    f", {counted(busy, 'running job')} may finish" if busy else ""))
        if self.kill_at is not None:
            self._end_running()

    def _busy(self):
        return [s.index for s in self.sched.slots if s.busy is not None]

    def _end_running(self):
        """TERM every running ssh (again for any started since); KILL them once due, and tell each
        kind of slot of an attempt that did not report after the KILL."""
        kill = self.clock() >= self.kill_at
        if not self.ending:
            self.ending = True
            for kind in self.kinds:
                kind.stop()
        for idx in self._busy():
            pid = self.board.pid[idx]
            if pid and (pid not in self.killed or kill):
                self.killed.add(pid)
                try:
                    os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        since = self.clock() - self.kill_at
        if kill and since >= OVERDUE:
            for idx in self._busy():
                kind = next((k for k in self.kinds if k.runs(idx)), None)
                if kind is not None:
                    kind.overdue(idx, since)
