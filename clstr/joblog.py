"""The job log (--joblog): GNU parallel's columns, a row per ended job, written and read back for
--resume and --resume-failed (clstr's own rows, GNU parallel's, and the older clstr's columns)."""
import os

from .errors import InputError
from .output import open_for_us

# GNU parallel's --joblog columns: scripts written for it (awk -F'\t' '$7 != 0') read clstr's
JOBLOG_COLUMNS = ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal", "Command"]
# the columns of clstr's job log before it took GNU parallel's, still read by --resume
OLD_COLUMNS = ["Seq", "Host", "Starttime", "JobRuntime", "Exitval", "Attempt", "Outcome", "Command"]


def log_command(text):
    """A command as the job log's last column holds it: as GNU parallel writes it, but for the
    two characters a row cannot hold raw, written ``\\t`` and ``\\n``.

    Commands are compared in this form (never unescaped), so that a backslash a command
    holds, as GNU parallel writes it, keeps its meaning.
    """
    return text.replace("\t", "\\t").replace("\n", "\\n")


def _old_unescape(text):
    """The Command column of the older job log (OLD_COLUMNS) (backslash, tab and newline escaped)."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append({"t": "\t", "n": "\n"}.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def exit_and_signal(exit, ending):
    """GNU parallel's Exitval and Signal of a job's last attempt (``ending``: a result.Ending).

    A timeout is (-1, 15), as parallel writes it; ssh killed by a signal (-1, signal); else the
    job's exit status, 255 for an ssh failure. A job the node's shell saw killed by a signal
    has the shell's status for it (128 + signal).
    """
    if ending.timed_out:
        return -1, 15
    if exit is not None and exit < 0:
        return -1, -exit
    return (exit if exit is not None else -1), 0


class JobLog:
    """GNU parallel's --joblog: one TSV row per job when it has ended (succeeded or failed).

    As parallel writes it with --retries: the row of the job's last attempt (every attempt
    is in --json). Each row is one write(2), so a crash loses nothing written. A job not run
    (interrupted, no node left) has no row: a --resume runs it.
    """

    def __init__(self, path):
        self.path = path
        try:
            self.fd = open_for_us(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except OSError as e:
            raise InputError(f"cannot write job log: {e.strerror}", path) from None
        try:
            new = os.lseek(self.fd, 0, os.SEEK_END) == 0
        except OSError:  # a pipe, /dev/stdout: a stream, new to us
            new = True
        if new:
            try:
                self._put("\t".join(JOBLOG_COLUMNS) + "\n")
            except OSError as e:
                os.close(self.fd)
                raise InputError(f"cannot write job log: {e.strerror}", path) from None

    def _put(self, text):
        data = text.encode("utf-8", "surrogateescape")
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def write(self, a):
        """The row of a job whose attempt ``a`` (an Attempt) was its last."""
        exitval, sig = exit_and_signal(a.exit, a.ending)
        row = [str(a.seq), a.node, f"{a.start:.3f}", f"{a.runtime:10.3f}", str(a.sent), str(a.received), str(exitval),
               str(sig), log_command(a.command)]
        try:
            self._put("\t".join(row) + "\n")
        except OSError as e:
            e.filename = self.path
            raise

    def close(self):
        os.close(self.fd)


def read_joblog(path):
    """The jobs a job log records as ended: [(seq, host, succeeded, command as log_command writes it)].

    Reads clstr's job log (GNU parallel's columns), GNU parallel's own, and the older one (OLD_COLUMNS). A
    row succeeded when Exitval and Signal are 0. A missing file records nothing; a file
    that is none of these is refused, naming the line: a guess could re-run finished work.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    except IsADirectoryError:
        raise InputError("the job log is a directory", path) from None
    except OSError as e:
        raise InputError(f"cannot read job log: {e.strerror}", path) from None
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    complete = lines[:-1]  # a crash may cut the last row short: it recorded nothing finished
    if not complete:
        return []
    header = complete[0].split("\t")
    if header == JOBLOG_COLUMNS:
        old, columns = False, JOBLOG_COLUMNS
    elif header == OLD_COLUMNS:
        old, columns = True, OLD_COLUMNS
    else:
        raise InputError("not a job log of clstr or GNU parallel (its first line is not their header)",
                         f"{path}:1")
    rows = []
    for n, line in enumerate(complete[1:], 2):
        if not line:
            continue
        cols = line.split("\t", len(columns) - 1)
        if len(cols) != len(columns) or not cols[0].isdigit():
            raise InputError("malformed job log row", f"{path}:{n}")
        if old:
            if cols[6] in ("succeeded", "failed"):  # requeued and interrupted attempts ended nothing
                rows.append((int(cols[0]), cols[1], cols[6] == "succeeded", log_command(_old_unescape(cols[7]))))
        else:
            ok = cols[6].strip() == "0" and cols[7].strip() == "0"
            rows.append((int(cols[0]), cols[1], ok, cols[8]))
    return rows


def ended_jobs(path, failed_too):
    """[(seq, command in log_command form)] of the jobs a job log records as ended; only succeeded
    ones unless ``failed_too`` (--resume skips both, as GNU parallel's; --resume-failed re-runs the
    failed)."""
    return [(seq, cmd) for seq, _, ok, cmd in read_joblog(path) if ok or failed_too]


def ended_on(path, command, failed_too):
    """The hosts where a job log records ``command`` as ended (for ``--on-each-node``)."""
    key = log_command(command)
    return {host for _, host, ok, cmd in read_joblog(path) if (ok or failed_too) and cmd == key}
