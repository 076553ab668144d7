"""A slot's files, for its worker (worker.py): the file session (transfer.py) and the steps of an
attempt's transfers, and --copy/--rcopy by rsync where this machine and the node both have it.

An edge: it starts ssh and rsync. The worker runs a step through ``step``, which turns what
fails into the (Ending, reason, file) that fails the attempt, and folds what moved into the
attempt's end with ``result``.
"""
import dataclasses
import os
import shutil
import time

from . import ssh, transfer
from .board import IDLE, RUNNING
from .deadlines import start_bound
from .events import Connected, Finished, Notice
from .proc import PIPE, Child, spawn_error
from .result import Ending

UNKNOWN = object()


class Moved:
    """What an attempt's transfers moved: bytes each way, their seconds, the files brought back."""

    __slots__ = ("sent", "received", "seconds", "returned", "opened", "home")

    def __init__(self):
        self.sent = self.received = 0
        self.seconds = 0.0
        self.returned = []  # (temporary path, its place) of each file brought back
        self.home = set()  # remote paths of returns that are the files here (a shared filesystem)
        self.opened = False  # the file session did something: a failure now is the attempt's


class SlotFiles:
    """The files of one slot's attempts: ``files`` the run's transfer.Files, ``reach`` the node's
    transport, ``control_path`` its shared connection (None: none); ``say(event)`` hands an event to
    the supervisor now; ``looping()``: whether the slot's job loop session is open."""

    def __init__(self, slot, node, files, reach, control_path, env, token, connect_timeout, board, devnull,
                 say, looping):
        self.slot, self.node, self.files, self.reach = slot, node, files, reach
        self.control_path, self.env, self.token, self.connect_timeout = control_path, env, token, connect_timeout
        self.board, self.devnull, self.say, self.looping = board, devnull, say, looping
        self.session = None  # the slot's FileSession while it lives
        self.made_workdir = False
        self.rsync = UNKNOWN  # --copy/--rcopy: this machine's rsync for the node, or None (_rsync)

    def by_rsync_if(self, job):
        """The attempt by rsync where it can go so (see by_rsync); None where it cannot."""
        # (a gateway's run carries no paths for rsync to send: its file session sends its copies)
        if self.files.only and job.files is not None and (self.files.copy or not job.files.sends) and self._rsync():
            return self.by_rsync(job)
        return None

    def step(self, moved, step, job):
        """Run a step of the attempt's transfers; None, or the (Ending, reason) that fails the attempt.

        A file session that cannot open is the node's ssh failure (the job never ran); anything
        else that fails is the attempt's own, naming the file and the cause.
        """
        t = time.monotonic()
        try:
            if self.session is None:
                self.open()
            self.board.pid[self.slot] = self.session.pid
            self.board.state[self.slot] = RUNNING
            step(job, moved)
        except transfer.TransferError as e:
            self.close()
            if e.here:  # this machine's failure, or the job's: never the node's
                return Ending.FILE_FAILED, str(e), e.file
            if not moved.opened:
                return Ending.NEVER_RAN, str(e), e.file
            return (Ending.LOST if e.lost else Ending.TRANSFER), str(e), e.file
        except OSError as e:
            self.close()
            return (Ending.NEVER_RAN if not moved.opened else Ending.TRANSFER), f"file session: {e.strerror or e}", None
        finally:
            moved.seconds += time.monotonic() - t
            self.board.pid[self.slot] = 0
            self.board.state[self.slot] = IDLE
        return None

    # ---- --copy/--rcopy by rsync, where both ends have it ---------------
    def _rsync(self):
        """This machine's rsync, where the node's transport can carry it and it was not found
        missing on the node; else None (the file session moves the files)."""
        if self.rsync is UNKNOWN:
            self.rsync = shutil.which("rsync") if hasattr(self.reach, "rsh") else None
        return self.rsync

    def by_rsync(self, job):
        """The attempt of a --copy/--rcopy run by rsync: the run's copies sent, the job's returns
        brought back, each by an rsync of its own; None where the node has no rsync (then the
        file session does it, for this attempt and the next)."""
        start, t0 = time.time(), time.monotonic()
        rsh, host = self.reach.rsh()
        keep = self.files.preserve
        steps = [("send", transfer.rsync_send_argv(self.rsync, rsh, host, sources, dest, keep), None)
                 for sources, dest in (self.files.copy if job.files.sends else ())]
        # each return into a temporary directory beside its place, then a temporary name there,
        # placed as the file session's are (a directory too: --rcopy DIR)
        tmps = {r: transfer.partial_name(r.local, "d") for r in job.files.returns}
        steps += [("return", transfer.rsync_fetch_argv(self.rsync, rsh, host, r.remote, tmps[r], keep), r)
                  for r in job.files.returns]
        sent = self.files.copy_bytes
        received, moved, returned = 0, False, []

        def failed(ret, *args, **kw):  # nothing brought back stays: its temporaries go
            for tmp in [t for t, _ in returned] + ([tmps[ret]] if ret is not None else []):
                transfer.discard(tmp)
            return None if not args else Finished(self.slot, job.seq, args[0], start, time.monotonic() - t0,
                                                   *args[1:], **kw)
        for what, argv, ret in steps:
            if ret is not None:
                os.makedirs(tmps[ret], exist_ok=True)
            try:
                code, err = self._rsync_run(argv, first=not moved)
            except OSError as e:
                return failed(ret, 255, Ending.NEVER_RAN, f"rsync could not be started here: {spawn_error(e)}")
            if code != 0:
                kind, words = transfer.rsync_failure(err, code)
                if kind == "missing" and not moved:
                    self.rsync = None
                    self.say(Notice(self.slot, "no rsync on the node: the files go by clstr's file session"))
                    return failed(ret)
                name = ret.remote if ret is not None else " ".join(self.files.copy[0][0])
                ending = (Ending.NEVER_RAN if not moved else Ending.LOST) if kind == "ssh" else Ending.TRANSFER
                reason = words if kind == "ssh" else (f"return: {name}: no such file on {self.node}" if kind == "gone"
                                                      else f"{what}: {name}: rsync: {words}")
                return failed(ret, 255 if code < 0 else code, ending, reason, sent=sent if moved else 0,
                              received=received)
            moved = True
            if ret is not None:
                final = self._landed(ret, tmps[ret])
                if final is None:  # rsync had nothing to bring (it went meanwhile)
                    return failed(ret, 255, Ending.TRANSFER, f"return: {ret.remote}: no such file on {self.node}",
                                  sent=sent, received=received)
                received += transfer.size_of(final)
                returned.append((final, ret.local))
        elapsed = time.monotonic() - t0
        return Finished(self.slot, job.seq, 0, start, 0.0, Ending.OK, sent=sent if job.files.sends else 0,
                        received=received, transfer=elapsed, connect=0.0, began=elapsed, returned=tuple(returned))

    def _rsync_run(self, argv, first):
        """Run one rsync to its end: (its exit status, the tail of its stderr); OSError if it cannot
        start. ``first``: the attempt's first, whose start says the slot is connected."""
        child = Child(argv, self.env, self.devnull, self.devnull, PIPE)
        if first:
            self.say(Connected(self.slot))  # its connection is rsync's: counted up at once
        self.board.pid[self.slot], self.board.state[self.slot] = child.pid, RUNNING
        err = b""
        try:
            while True:
                data = os.read(child.fds[2], 65536)
                if not data:
                    break
                err = (err + data)[-4096:]
            return child.wait(), err
        finally:
            child.close()
            self.board.pid[self.slot], self.board.state[self.slot] = 0, IDLE

    @staticmethod
    def _landed(ret, tmpdir):
        """What rsync brought into ``tmpdir`` for the return ``ret``, moved to the temporary name
        beside its place (None if it brought nothing); ``tmpdir`` goes."""
        got = os.path.join(tmpdir, os.path.basename(ret.remote.rstrip("/")))
        if not os.path.lexists(got):
            return None
        final = transfer.partial_name(ret.local)
        os.replace(got, final)
        os.rmdir(tmpdir)
        return final

    def open(self):
        argv = self.reach.argv(ssh.files_line(self.token, os.urandom(6).hex()), self.control_path)
        self.session = transfer.FileSession(argv, self.env, self.token, start_bound(self.connect_timeout))
        if not self.control_path and not self.looping():
            self.say(Connected(self.slot))  # the node took a connection of the slot's own: it is up

    def close(self):
        if self.session is not None:
            session, self.session = self.session, None
            session.close()
        self.made_workdir = False

    def basefiles(self, job, moved):
        moved.opened = True
        self._workdir()
        for b in self.files.basefiles:
            moved.sent += self.session.send(b.local, b.remote, base=True, hold=self.files.cleanup, stamp=b.stamp,
                                                 mark=b.mark)

    def _workdir(self):
        if not self.made_workdir and self.files.workdir:
            self.session.mkdirs([self.files.workdir])
        self.made_workdir = True

    def send(self, job, moved):
        moved.opened = True
        self._workdir()
        if job.files is None:
            return
        if self.files.cleanup:
            self.session.later([s.remote for s in job.files.sends], job.files.returns)
        for s in job.files.sends:
            moved.sent += self.session.send(s.local, s.remote, hold=self.files.cleanup, mark=s.mark,
                                            preserve=self.files.preserve)

    def fetch(self, job, moved):
        for r in job.files.returns:
            got = self.session.fetch(r.remote, r.local, self.node, r.mark, preserve=self.files.preserve)
            if got is None:
                moved.home.add(r.remote)  # the node's path is the file here: home already, never removed
                continue
            moved.received += got[1]
            moved.returned.append((got[0], r.local))

    def clean(self, job, moved):
        self.session.remove([s.remote for s in job.files.sends],
                                 [r for r in job.files.returns if r.remote not in moved.home],
                                 fetched={r.remote for r in job.files.returns
                                          if r.local in {local for _, local in moved.returned}})

    def result(self, finished, moved):
        if finished is None or not (moved.opened or moved.returned):
            return finished
        if finished.ending is not Ending.OK:
            for tmp, _ in moved.returned:
                transfer.discard(tmp)  # only an attempt taken as the job's result writes its files
            moved.returned = []
        return dataclasses.replace(finished, sent=moved.sent, received=moved.received, transfer=moved.seconds,
                                   returned=tuple(moved.returned))
