"""The slots' worker processes: fork, pipes, sentinels, death and release; and the contract of
any slot pool.

The contract. A slot pool runs the attempts of its slots, one at a time a slot, and is how the
supervisor reaches them; the local WorkerPool here forks a process a slot, and a pool of slots
on another machine (a gateway) keeps the same contract.

* It is given, for each slot when it starts that slot's worker, a worker.WorkerSpec (slot,
  node, ssh settings, environment, ControlMaster path, time limits) and the slot's first
  events.Job. Later it is sent, down the slot's channel only: another Job once the slot's
  attempt ended; a Limit (a straggler's limit) while an attempt runs, which it applies or, if
  the attempt ended meanwhile, ignores; None, to end the slot's worker once it is idle.
* It sends back, for the slot, in the order they happened and in whole messages (one event
  or a list of them): Connected (the slot's connection came up), Output (whole lines of a
  job, or pieces of one too long to hold, the stream the job's until its line ends), Notice
  (words for -v), and for each attempt exactly one of Finished (it ran or ssh failed: exit,
  events.Ending, why) or Deferred (not started: behind a busy jump host). Nothing counts as done
  without its Finished.
* Its slots' states and the pid of each running ssh are in the shared board (board.py), so
  that --status is drawn and a dead worker's ssh ended without a message.
* When a slot's worker dies (its channel reaches EOF or its sentinel fires), the pool says so
  (``died``: the messages it had sent before dying, its exit code) and ends what it had
  started; the supervisor records the attempt as a worker death (the job goes back) and starts
  the slot again only when it gives it a job.
* At the end (``shutdown``) every worker is told to go, then killed after a grace, its ssh too.

The local pool. One process a slot, started with the slot's first job (so it starts ssh with no
message to wait for) and given a duplex ``multiprocessing`` pipe of its own.
A pipe per worker rather than one shared ``multiprocessing.Queue``: a Queue's
writers share a cross-process lock, and a worker killed with SIGKILL while
holding it would hang every other worker; a pipe breaks only for the worker
that died. The pool registers each pipe and each process sentinel with the
supervisor's selector, each with the handler it calls (a message, a death, a reaped worker);
the supervisor decides when a worker starts or goes.
"""
import functools
import os
import resource
import select
import selectors
import signal
import time

from .board import CONNECTING, GONE, Board
from .proc import end_group

JOIN_GRACE = 2.0  # how long a worker told to exit gets before it is killed


class ForkedProcess:
    """A worker process started with a bare ``os.fork``: the part of ``multiprocessing.Process`` we use.

    multiprocessing's fork start does more a process (its bootstrap, finalizers, after-fork
    hooks, a Popen object) than a worker needs: a bare fork measured 1.4x cheaper for the parent
    and the child together (bench/forkcost.py). The coordination stays on multiprocessing's
    pipes and shared arrays. ``sentinel`` is the read end of a pipe only the child holds the
    write end of: readable (EOF) once the child is gone, as multiprocessing's sentinel is.
    """

    def __init__(self, target, args=(), name=None, daemon=True):
        self.target, self.args, self.name = target, args, name
        self.pid = None
        self.sentinel = None
        self.exitcode = None

    def start(self):
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            raise
        if pid == 0:  # the child: run the target, never return into the supervisor's code
            code = 1
            try:
                os.close(r)
                signal.set_wakeup_fd(-1)  # the supervisor's wake-up socket is not ours to write
                self.target(*self.args)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        self.pid, self.sentinel = pid, r

    def join(self, timeout=None):
        """Reap the child if it exits within ``timeout`` seconds (None: wait for it)."""
        if self.exitcode is not None or self.pid is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG if deadline is not None else 0)
            if pid:
                self.exitcode = os.waitstatus_to_exitcode(status)
                os.close(self.sentinel)
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            select.select([self.sentinel], [], [], min(left, 1.0))

    def is_alive(self):
        self.join(0)
        return self.exitcode is None

    def kill(self):
        if self.exitcode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class _Slot:
    """The pool's handle on one slot's worker."""

    __slots__ = ("proc", "conn")

    def __init__(self):
        self.proc = None
        self.conn = None


class WorkerPool:
    """Worker processes of ``nslots`` slots, each running ``target(spec(slot), conn, board, close, first)``."""

    def __init__(self, ctx, nslots, target, spec, sel, process=None, capacity=None, handlers=None):
        """``spec(slot)``: the slot's worker.WorkerSpec; ``process``: what makes a process
        (ForkedProcess unless a test gives another); ``capacity``: the most slots the pool may grow
        to (a live node list), its shared board sized for them at once; ``handlers``: what the
        selector calls (message(slot): a worker's pipe is readable; death(slot): a worker exited;
        reaped(process): a worker told to go has gone)."""
        self.ctx = ctx
        self.on_message, self.on_death, self.on_reaped = handlers or (None, None, None)
        self.target = target
        self.spec = spec
        self.sel = sel
        self.process = process or ForkedProcess
        self.slots = [_Slot() for _ in range(nslots)]
        self.capacity = max(capacity or nslots, nslots)
        self.board = Board(ctx, self.capacity)  # the workers' states and their ssh's pids, in shared memory
        self.released = []  # workers told to exit, reaped when they do
        self.paused = False

    # ---- starting ------------------------------------------------------
    def grow(self, n):
        """Room for ``n`` more slots, up to the capacity; returns how many were added."""
        n = max(0, min(n, self.capacity - len(self.slots)))
        self.slots.extend(_Slot() for _ in range(n))
        return n

    def raise_fd_limit(self):
        """Make room for every slot's descriptors; returns the old limit to restore, or None.

        The supervisor holds three a slot (the worker's pipe and its sentinel pipe), so the usual
        soft limit of 1,024 open files ends at about 330 slots; the hard limit is usually far above.
        A slot that finds no descriptor left is left out (``start`` raises), the run goes on without it.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 4 * self.capacity + 256
        if soft == resource.RLIM_INFINITY or soft >= need:
            return None
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            return None
        return soft, hard

    def start(self, idx, first):
        """Start slot ``idx``'s worker with its first job; OSError if no process or descriptor is left."""
        ours, theirs = self.ctx.Pipe(duplex=True)
        # the child closes every supervisor end it inherits, its own included: when the
        # supervisor dies, each worker then sees EOF
        others = [s.conn for s in self.slots if s.conn is not None] + [ours]
        proc = self.process(target=self.target, name=f"clstr-slot-{idx}", daemon=True,
                            args=(self.spec(idx), theirs, self.board, others, first))
        try:
            proc.start()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        theirs.close()  # the worker holds the only copy: its death is our EOF
        s = self.slots[idx]
        s.proc, s.conn = proc, ours
        if not self.paused:
            self.sel.register(ours, selectors.EVENT_READ, functools.partial(self.on_message, idx))
        self.sel.register(proc.sentinel, selectors.EVENT_READ, functools.partial(self.on_death, idx))

    def send(self, idx, job):
        """Hand a job to a live worker; False if its pipe is broken (it died)."""
        try:
            self.slots[idx].conn.send(job)
            return True
        except (OSError, ValueError):
            return False

    def live(self, idx):
        return self.slots[idx].proc is not None

    def live_slots(self):
        return {i for i, s in enumerate(self.slots) if s.proc is not None}

    def count(self):
        return sum(1 for s in self.slots if s.proc is not None)

    # ---- reading -------------------------------------------------------
    def recv(self, idx):
        """One message of slot ``idx``'s worker; None if it is not there, EOFError if it died."""
        conn = self.slots[idx].conn
        if conn is None:
            return None  # its death was handled earlier in this same wake-up
        try:
            return conn.recv()
        except OSError as e:
            raise EOFError(str(e)) from None

    def deliver(self, idx, events, died):
        """One message of slot ``idx``'s worker to ``events(idx, message)``; its death (EOF) to
        ``died(idx)``: what the pool's message handler does, for the root and a gateway alike."""
        try:
            message = self.recv(idx)
        except EOFError:
            died(idx)
            return
        if message is not None:
            events(idx, message)

    def pause(self, pause):
        """Stop (or resume) reading every worker: the reader of our output is behind."""
        if pause == self.paused:
            return
        self.paused = pause
        for idx, s in enumerate(self.slots):
            if s.conn is None:
                continue
            if pause:
                self.sel.unregister(s.conn)
            else:
                self.sel.register(s.conn, selectors.EVENT_READ, functools.partial(self.on_message, idx))

    # ---- ending --------------------------------------------------------
    def release(self, idx):
        """Tell slot ``idx``'s idle worker to exit; its end wakes the loop, which reaps it then."""
        self.send(idx, None)
        proc = self.forget(idx)
        self.released.append(proc)
        try:
            self.sel.register(proc.sentinel, selectors.EVENT_READ, functools.partial(self.on_reaped, proc))
        except (AttributeError, ValueError, KeyError, OSError):
            pass

    def reaped(self, proc):
        """A released worker exited: reap it (no zombie waits for the run's end)."""
        self.sel.unregister(proc.sentinel)
        proc.join(0)
        if proc.exitcode is not None:
            self.released.remove(proc)

    def forget(self, idx):
        """Stop watching slot ``idx``'s worker; returns its process."""
        s = self.slots[idx]
        for obj in (s.conn, s.proc.sentinel if s.proc else None):
            if obj is not None:
                try:
                    self.sel.unregister(obj)
                except (KeyError, ValueError):
                    pass
        if s.conn is not None:
            s.conn.close()
        s.conn = None
        proc, s.proc = s.proc, None
        return proc

    def died(self, idx):
        """Slot ``idx``'s worker exited: (the messages it sent before dying, its exit code).

        Its orphaned ssh, if any, is ended and reaped (we are the subreaper); the slot is GONE
        until it is given a job again, which forks a new worker.
        """
        s = self.slots[idx]
        messages = []
        try:
            while s.conn.poll():
                messages.append(s.conn.recv())  # what it sent before dying still counts
        except (EOFError, OSError):
            pass
        proc = self.forget(idx)
        proc.join(1.0)
        pid = self.board.pid[idx]
        if pid:
            end_group(pid, grace=0)
            self.board.pid[idx] = 0
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.board.state[idx] = GONE
        return messages, proc.exitcode

    def kill(self, idx):
        if self.slots[idx].proc is not None:
            self.slots[idx].proc.kill()

    def shutdown(self, clock):
        """Every worker exits: told to, then killed after JOIN_GRACE; their ssh end too."""
        for proc in self.released:
            try:
                self.sel.unregister(proc.sentinel)
            except (KeyError, ValueError, AttributeError):
                pass
            proc.join(JOIN_GRACE)  # told to exit while idle: gone or going
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        live = sorted(self.live_slots())
        for i in live:
            pid = self.board.pid[i]
            if pid and self.board.state[i] == CONNECTING:  # a connection not waited for (its job ran
                end_group(pid, grace=0)  # elsewhere): its worker, waiting on it, hears the exit at once
            self.send(i, None)
        deadline = clock() + JOIN_GRACE
        for proc in [self.forget(i) for i in live]:
            proc.join(max(0.0, deadline - clock()))
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        for pid in list(self.board.pid):
            if pid:
                end_group(pid, grace=0)
