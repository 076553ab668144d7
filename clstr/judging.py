"""How an attempt ended, judged from what its ssh left: its exit status, the marks read from its
streams (a reading.Marked), ssh's own words, and the state of the node's shared connection.

With remote cleanup the marks say it exactly, and no text the job writes is read: an end mark
gives the job's own status (255 included); a start mark alone, a connection lost while it ran
or, where the connection is alive, a job that ended what writes its mark (a ``kill -9 0``); no
start mark, a node that never ran it (only then is stderr, all of it ssh's and the login's, read
for why). Without cleanup: only exit 255 with one of ssh's own messages is an ssh failure.
The only things it looks at beyond its arguments are the master's log file and its socket.
"""
import dataclasses
import os
import socket

from . import ssh, sudo
from .reading import STDERR_TAIL
from .result import Ending

# Why a job that started is taken for failed without its end mark (the connection being alive):
LOOP_KILLED = "it killed the job loop (a kill -9 of its process group?)"
NO_END_MARK = "its shell was killed before its end mark (a kill -9 of its process group?)"


def ended(status):
    """The Ending of a job that ended with ``status``."""
    return Ending.OK if status == 0 else Ending.EXIT


def timed(finished, p, t0, before=0.0, marked=True):
    """``finished`` (an events.Finished whose runtime is all of the attempt so far) with its time
    split: the job's own runtime, from its start mark to its end mark as they were read here (the
    node's clock is not needed; ``p``: the attempt's reading.Marked, or None), and before it
    ``connect``, opening the connection or session (``before``: seconds of files sent meanwhile,
    not counted), and ``began``. Without marks (no remote cleanup) the runtime is all of it, files
    apart."""
    runtime, connect, began = times(p, t0, finished.runtime, before, marked or finished.ending is Ending.NEVER_RAN)
    return dataclasses.replace(finished, runtime=runtime, connect=finished.connect if connect is None else connect,
                               began=began)


def times(p, t0, elapsed, before=0.0, marked=True):
    """(runtime, connect, began) of an attempt that has run ``elapsed`` seconds since ``t0``, as
    ``timed`` splits them (``marked``: its time before a start mark is not the job's; connect None:
    not known here)."""
    if p is not None and p.started_at is not None:
        end = p.ended_at if p.ended_at is not None else t0 + elapsed
        return max(0.0, end - p.started_at), max(0.0, p.started_at - t0 - before), p.started_at - t0
    if marked:
        return 0.0, max(0.0, elapsed - before), elapsed
    return max(0.0, elapsed - before), None, before


def asks_jump_host(job, finished):
    """Whether the node's ProxyJump host goes with the attempt's end: the scheduler asked, or a
    handshake was refused (the refusal may be the jump host's)."""
    return job.lookup or (finished.ending is Ending.NEVER_RAN and finished.reason == "connection closed")


class Judge:
    """Judges the attempts of one slot: ``marked`` (remote cleanup: the run's marks are written),
    ``control_path`` (the node's ControlMaster socket, or None), ``reach`` (the node's transport,
    transports.py: what its own failures say; None: ssh's)."""

    def __init__(self, marked, control_path=None, reach=None):
        self.marked = marked
        self.control_path = control_path
        self.classify = reach.classify if reach is not None else None  # None: ssh's words, read here
        self.program = reach.program if reach is not None else "ssh"
        self.silent_is_kept = reach is None or reach.silent_is_kept

    def verdict(self, code, p, session=False):
        """(exit status, Ending, reason) of an attempt of one session: ended by clstr for a time
        limit (``p.timed_out``) or for no start mark in time (``p.late``), else as ``attempt``.
        A job sudo refused to start (--sudo: its mark says why) never ran: its node's doing.
        ``session``: the job went down the slot's loop session (``code``: the session's end)."""
        if p.sudo is not None:
            return 255, Ending.NEVER_RAN, sudo.reason(p.sudo)
        if p.late:
            return 255, Ending.NEVER_RAN, "timed out"  # a stalled handshake, a hung login
        if p.timed_out:
            return code, p.timed_out, None
        return self.attempt(code, p, session)

    def attempt(self, code, p, session=False):
        """(exit status, Ending, reason) of an attempt that ran to its end or whose ssh failed."""
        if self.marked:
            if p.end is not None:
                return p.end, ended(p.end), None
            if p.loop_gone:  # the job killed the loop's runner (SIGKILL): the job's own doing
                return 255, Ending.EXIT, LOOP_KILLED
            if p.started:
                lost = self.lost(code, p)
                return (code, Ending.LOST, lost) if lost else (code, Ending.EXIT, NO_END_MARK)
            if session:  # the session ended before the job started: the node's or its ssh's doing
                return 255, Ending.NEVER_RAN, self.never_ran_reason(p.tail) or f"{self.program} exit {code}"
            if self.classify is not None:  # another transport: its own last words, or its status
                return code, Ending.NEVER_RAN, self.classify(p.tail) or f"{self.program} exit {code}"
            reason = self.never_ran_reason(p.tail) if code == 255 else ssh.classify(p.tail)[0]
            if reason is None:
                reason = f"ssh exit {code}" if code in (255, 0) or code < 0 else \
                    f"the login shell did not run the job (exit {code})"
            return code, Ending.NEVER_RAN, reason
        if code < 0:
            return code, Ending.LOST, f"ssh killed by signal {-code}"
        if code != 255 or self.classify is not None:  # without marks, another transport's exit is the job's
            return code, ended(code), None
        reason, never_ran = ssh.classify(p.tail)
        if reason is None and self.master_lost():
            # a mux client says nothing when its master dies: the master's log says why
            reason, never_ran = self.master_error() or "connection lost", False
        if reason is None:
            return code, Ending.EXIT, None
        return code, Ending.NEVER_RAN if never_ran else Ending.LOST, reason

    def asks_node(self, finished, p):
        """Whether the attempt's end is for its node to tell: the job started and ended with no end
        mark, ssh said nothing of a lost connection and there is no master to ask (one session a
        job, no shared connection; an ssh_config's LogLevel ERROR hides ssh's "Timeout, server ...
        not responding."). Either its connection died of silence (the node's wrapper lives on, or
        the node does not answer) or the job killed its own shell (the wrapper is gone). The
        wrapper's pid came with the start mark: ssh.alive_line asks about it."""
        return (self.marked and not self.control_path and p.shell is not None
                and finished.ending is Ending.EXIT and finished.reason == NO_END_MARK)

    def lost(self, code, p):
        """Why a job that started ended with no end mark: its connection was lost (the reason), or
        None where the connection is alive, so that it was the job that ended what writes the mark
        (its wrapper or the loop: a `kill -9 0`).

        The connection is lost when ssh was killed, when ssh's own last words say so (a lost
        connection is the last thing it writes), or when the node's shared connection is gone.
        """
        if code < 0:
            return f"{self.program} killed by signal {-code}"
        if self.classify is not None:
            return None  # no words of its own after the job started: the job's last line is not read
        last = p.last_err.rstrip(b"\n").rpartition(b"\n")[2]
        reason, _ = ssh.classify(last)
        if reason is not None:
            return reason
        if self.control_path and not self.master_alive():
            return self.master_error() or "connection lost"
        return None

    def never_ran_reason(self, tail):
        """Why ssh failed before the job started: its own message in ``tail`` (stderr before any
        start mark), else the master's log if the master is gone (a mux client says nothing)."""
        if self.classify is not None:
            return self.classify(tail)
        reason, _ = ssh.classify(tail)
        if reason is None and self.master_lost():
            reason = self.master_error() or "connection lost"
        return reason

    def words(self, p):
        """ssh's own words for an attempt's failure (ssh.said): from what it wrote before the job
        (``p``: the attempt's reading.Marked, or None), its last line, or the master's log."""
        if self.classify is not None:
            return None  # another transport: its reason is its own last line already
        for text in ((p.tail, p.last_err) if p is not None else ()):
            words = ssh.said(text)
            if words:
                return words
        log = self._master_log()
        return None if log is None else ssh.said(log)

    def master_error(self):
        """Why the node's master failed or died, from the log it writes (None if unknown)."""
        log = self._master_log()
        return None if log is None else ssh.classify(log)[0]

    def _master_log(self):
        """The last bytes of the log the node's master writes (None: no master, or no log)."""
        if not self.control_path:
            return None
        try:
            with open(f"{self.control_path}.err", "rb") as f:
                return f.read()[-STDERR_TAIL:]
        except OSError:
            return None

    def master_lost(self):
        return bool(self.control_path) and not os.path.exists(self.control_path)

    def master_alive(self):
        """Whether the node's ControlMaster answers on its socket (a connect, nothing sent)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(1.0)
        try:
            sock.connect(self.control_path)
            return True
        except OSError:
            return False
        finally:
            sock.close()


def after_asking(finished, answer, code, silent_is_kept=True):
    """``finished`` (judged the job's own: no end mark) as its node answered ssh.alive_line:
    ``gone``, the job killed its shell: kept; ``alive``, or no answer at all (``code`` 255 or
    None: ssh could not reach it, or ran out of time), its connection was lost; a node that
    answered without a word (no sh there): kept, unless ``silent_is_kept`` is False (a transport
    whose own failures are any status: a --connect command's container gone)."""
    if b"gone" in answer or (silent_is_kept and b"alive" not in answer and code is not None and 0 <= code != 255):
        return finished
    return dataclasses.replace(finished, ending=Ending.LOST, reason="connection lost")
