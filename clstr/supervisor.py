"""The one event loop: forks workers, feeds them jobs, drains their events, handles signals.

Each worker has its own duplex ``multiprocessing`` pipe: jobs go down it, and
``Connected``/``Output``/``Finished`` events come back. A pipe per worker
rather than one shared ``multiprocessing.Queue``: a Queue's writers share a
cross-process lock, and a worker killed with SIGKILL while holding it would
hang every other worker; a pipe breaks only for the worker that died. The
supervisor waits on all pipes, the workers' sentinels and a signal wake-up
socket with one epoll selector, so it sleeps when there is nothing to do.
"""
import gc
import multiprocessing
import os
import resource
import selectors
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from . import controldir, reaper
from .events import Connected, Finished, Notice, Output
from .output import JobLog, silence, write_active
from .scheduler import FAILED, NOT_RUN, SUCCEEDED, Policy
from .ssh import SshConfig
from .status import GONE, Board, Rate, status_line
from .worker import MAX_WAIT, end_group, worker_main

INTERRUPT_GRACE = 2.0  # TERM to KILL for running ssh when interrupted
# Job output a slow reader has not taken yet waits in memory up to this much; past it the
# supervisor reads no more from its workers (and starts no job) until the reader catches up.
OUTPUT_HIGH = 32 * 1024 * 1024
ACTIVE_INTERVAL = 0.5  # the --active-nodes file is rewritten at most this often


@dataclass
class RunOptions:
    """Everything a run needs besides its jobs and nodes."""

    ssh: SshConfig = field(default_factory=SshConfig)
    policy: Policy = field(default_factory=Policy)
    timeout: Optional[float] = None  # per attempt
    multiplex: bool = True
    ssh_delay: float = 0.0  # at least this many seconds between new connections
    active_nodes: Optional[str] = None
    joblog: Optional[str] = None
    verbose: bool = False


@dataclass
class RunResult:
    """How every job ended, which nodes were retired and why; the interface of a run."""

    jobs: list
    retired_nodes: dict
    signal: Optional[int] = None
    skipped: int = 0  # jobs a --resume found done already
    error: Optional[str] = None  # a write that failed mid-run (no job started after it)

    def _with(self, outcome):
        return [j for j in self.jobs if j.outcome == outcome]

    @property
    def succeeded(self):
        return self._with(SUCCEEDED)

    @property
    def failed(self):
        return self._with(FAILED)

    @property
    def not_run(self):
        return self._with(NOT_RUN)

    @property
    def ok(self):
        return self.signal is None and self.error is None and all(j.outcome == SUCCEEDED for j in self.jobs)

    def to_dict(self, max_exit=False):
        """The machine-readable summary (what --json writes)."""
        nodes = {}
        for j in self.jobs:
            for a in j.attempts:
                n = nodes.setdefault(a.node, {"attempts": 0, "succeeded": 0})
                n["attempts"] += 1
                n["succeeded"] += a.outcome == SUCCEEDED
        for name, reason in self.retired_nodes.items():
            nodes.setdefault(name, {"attempts": 0, "succeeded": 0})
        for name, n in nodes.items():
            n["retired"] = name in self.retired_nodes
            n["reason"] = self.retired_nodes.get(name, "")
        return {
            "exit_status": self.exit_code(max_exit),
            "interrupted_by": signal.Signals(self.signal).name if self.signal else None,
            "error": self.error,
            "counts": {"jobs": len(self.jobs), "succeeded": len(self.succeeded), "failed": len(self.failed),
                       "not_run": len(self.not_run), "skipped": self.skipped},
            "jobs": [{
                "seq": j.seq, "command": j.command, "outcome": j.outcome, "reason": j.reason,
                "node": j.node, "exit": j.exit, "runtime": round(j.runtime, 3), "attempts": [
                    {"node": a.node, "attempt": a.attempt, "start": round(a.start, 3),
                     "runtime": round(a.runtime, 3), "exit": a.exit, "outcome": a.outcome, "reason": a.reason}
                    for a in j.attempts]} for j in self.jobs],
            "nodes": nodes,
        }

    def exit_code(self, max_exit=False):
        """0 all succeeded; 1 some failed or not run; 128+N interrupted by signal N.

        ``max_exit`` (pdsh's and clush's -S): the largest exit status of the jobs instead,
        255 for a job not run, timed out or ended by ssh's failure.
        """
        if self.signal is not None:
            return 128 + self.signal
        if not max_exit:
            return 0 if self.ok else 1
        worst = 1 if self.error else 0
        for j in self.jobs:
            if j.outcome == SUCCEEDED:
                continue
            bad = j.outcome == NOT_RUN or j.exit is None or j.exit < 0 or j.reason == "timeout"
            worst = max(worst, 255 if bad else min(j.exit, 255) or 1)
        return worst


class _Slot:
    """The supervisor's handle on one slot's worker."""

    __slots__ = ("proc", "conn", "started")

    def __init__(self):
        self.proc = None
        self.conn = None
        self.started = 0.0


class Supervisor:
    """Runs the jobs of a Scheduler on worker processes and reports to a Printer."""

    def __init__(self, scheduler, options, printer, status=None, log=None, clock=time.monotonic,
                 worker=worker_main, process=None, joblog=None):
        """``worker``: the body run in each forked slot process (tests script it); ``process``:
        what makes the process (multiprocessing's fork Process unless a test gives another)."""
        self.sched = scheduler
        self.worker = worker
        self.opt = options
        self.printer = printer
        self.status = status
        self.log = log or (lambda msg: None)
        self.clock = clock
        self.ctx = multiprocessing.get_context("fork")
        self.process = process or self.ctx.Process
        self.run_id = os.urandom(16).hex()
        self.nslots = len(scheduler.slots)
        self.slots = [_Slot() for _ in range(self.nslots)]
        self.board = Board(self.ctx, self.nslots)
        self.env = dict(os.environ, **{reaper.MARKER: self.run_id})
        self.control_dir = None
        self.control_paths = {}
        self.sel = selectors.DefaultSelector()
        self.signals = []
        self.signal = None
        self.kill_at = None  # when interrupted: when TERM turns to KILL
        self.killed = set()
        self.joblog = joblog  # an open JobLog, or opened from options.joblog at the start
        self.rate = Rate(clock)
        self.active_dirty = False
        self.active_last = 0.0
        self.next_connect = 0.0
        self.released = []  # idle workers told to exit, joined at shutdown
        self.write_error = None  # the first write that failed: no job starts after it
        self.out_fds = set()  # output descriptors registered for writability (a reader is behind)
        self.paused = False  # too much output waits: workers are not read until it is taken

    # ---- setup and teardown -------------------------------------------
    def run(self):
        """Run every job; returns the RunResult. Leaves no process of the run behind."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self.sel.register(wake_r, selectors.EVENT_READ, ("wake", None))
        old = self._install_signals(wake_w)
        self.subreaper = reaper.subreaper(True)
        old_limit = self._raise_fd_limit()
        try:
            if self.opt.joblog and self.joblog is None:
                self.joblog = JobLog(self.opt.joblog)
            if self.opt.multiplex:
                index = {node: i for i, node in enumerate(self.sched.nodes)}
                names = {(node, n): f"{index[node]}-{n}" for node, n in self.sched.groups}
                self.control_dir = controldir.make(max(len(x) for x in names.values()) + 4)  # + ".err"
                for group, name in names.items():
                    self.control_paths[group] = os.path.join(self.control_dir, name)
            gc.freeze()  # forked workers then share the supervisor's objects without copying them
            self._loop()
        finally:
            gc.unfreeze()
            self._shutdown()
            if old_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, old_limit)
            self._restore_signals(old)
            self.sel.close()
            wake_r.close()
            wake_w.close()
        return RunResult(jobs=sorted(self.sched.jobs.values(), key=lambda j: j.seq),
                         retired_nodes=self.sched.retired_nodes(), signal=self.signal, error=self.write_error)

    def _write(self, what, fn, *args):
        """Call a writing ``fn``; a failure stops the run from starting jobs, and is reported once.

        Running jobs end as they will and every job is still accounted for: the summary, the
        job log (where it can be written) and the JSON say what became of each.
        """
        try:
            fn(*args)
            return True
        except OSError as e:
            if self.write_error is None:
                name = e.filename or what
                self.write_error = f"cannot write {name}: {e.strerror or e}"
                self._log(f"{self.write_error}; no more jobs start")
                self.sched.stop(f"not started: {self.write_error}")
            return False

    def _raise_fd_limit(self):
        """Make room for every slot's descriptors; returns the old limit to restore, or None.

        The supervisor holds three a slot (the worker's pipe and its sentinel pipe), so the usual
        soft limit of 1,024 open files ends at about 330 slots; the hard limit is usually far above.
        A slot that finds no descriptor left is left out (see _fork), the run goes on without it.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 4 * self.nslots + 256
        if soft == resource.RLIM_INFINITY or soft >= need:
            return None
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            return None
        return soft, hard

    def _install_signals(self, wake_w):
        try:
            old_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        except ValueError:
            return None  # not the main thread: the caller handles signals
        old = {"fd": old_fd}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            old[sig] = signal.signal(sig, lambda signum, frame: self.signals.append(signum))
        return old

    def _restore_signals(self, old):
        if old is None:
            return
        signal.set_wakeup_fd(old.pop("fd"))
        for sig, handler in old.items():
            signal.signal(sig, handler)

    def _fork(self, idx, first):
        """Start the slot's worker with its first job: it starts ssh with no message to wait for.

        False if it could not be started (no process or descriptor left): the slot is left out
        and its job goes back to the queue.
        """
        try:
            self._start_worker(idx, first)
        except OSError as e:
            self._log(f"slot {idx} ({self.sched.slots[idx].node}) left out: no worker could be started "
                      f"({e.strerror or e})")
            self._write("job output", self.printer.attempt_ended, first.seq)
            self.sched.slot_lost(idx)
            return False
        return True

    def _start_worker(self, idx, first):
        slot = self.sched.slots[idx]
        node = slot.node
        ours, theirs = self.ctx.Pipe(duplex=True)
        # the child closes every supervisor end it inherits, its own included: when the
        # supervisor dies, each worker then sees EOF
        others = [s.conn for s in self.slots if s.conn is not None] + [ours]
        proc = self.process(
            target=self.worker, name=f"clstr-slot-{idx}", daemon=True,
            args=(idx, node, theirs, self.opt.ssh, self.board, self.env,
                  self.control_paths.get(slot.group), self.opt.timeout, others, first))
        try:
            proc.start()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        theirs.close()  # the worker holds the only copy: its death is our EOF
        s = self.slots[idx]
        s.proc, s.conn = proc, ours
        self.sel.register(ours, selectors.EVENT_READ, ("conn", idx))
        self.sel.register(proc.sentinel, selectors.EVENT_READ, ("dead", idx))

    def _release(self, idx):
        """Tell the idle worker of slot ``idx`` to exit; it is joined at shutdown."""
        try:
            self.slots[idx].conn.send(None)
        except (OSError, ValueError):
            pass
        proc = self._forget(idx)
        self.released.append(proc)
        try:
            # its end wakes the loop, which reaps it then: no zombie waits for the run's end
            self.sel.register(proc.sentinel, selectors.EVENT_READ, ("gone", proc))
        except (AttributeError, ValueError, KeyError, OSError):
            pass

    def _reaped(self, proc):
        """A released worker exited: reap it."""
        self.sel.unregister(proc.sentinel)
        proc.join(0)
        if proc.exitcode is not None:
            self.released.remove(proc)

    def _make_room(self):
        """Before a new worker starts: with -m N, at most N workers live, so an idle one goes."""
        limit = self.sched.policy.max_running
        if limit is None:
            return
        idle = self._idle_workers()
        excess = sum(1 for s in self.slots if s.proc is not None) - limit + 1
        for idx in idle[:max(0, excess)]:
            self._release(idx)

    def _release_finished(self, idx):
        """A slot's attempt ended: its worker goes at once if the slot can get no further job."""
        if self.slots[idx].proc is not None and not self.sched.has_future(idx):
            self._release(idx)

    def _release_idle(self):
        """Let idle workers go once nothing waits: exits spread over the run, not all at the end.

        Should a failure re-queue a job later, its slot simply forks a new worker.
        """
        for idx in self._idle_workers():
            self._release(idx)

    def _idle_workers(self):
        return [i for i, s in enumerate(self.slots) if s.proc is not None and self.sched.slots[i].busy is None]

    def _forget(self, idx):
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

    def _shutdown(self):
        for proc in self.released:
            try:
                self.sel.unregister(proc.sentinel)
            except (KeyError, ValueError, AttributeError):
                pass
            proc.join(2.0)  # told to exit while idle: gone or going
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        live = [i for i, s in enumerate(self.slots) if s.proc is not None]
        for i in live:
            try:
                self.slots[i].conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = self.clock() + 2.0
        for i in live:
            s = self.slots[i]
            s.proc.join(max(0.0, deadline - self.clock()))
            if s.proc.is_alive():
                s.proc.kill()
                s.proc.join(1.0)
            self._forget(i)
        for pid in list(self.board.pid):
            if pid:
                end_group(pid, grace=0)
        # the backstop: anything of the run still alive (masters included) ends now
        reaper.reap(self.run_id, descendants_only=self.subreaper)
        if self.subreaper:
            reaper.subreaper(False)
        if self.control_dir:
            shutil.rmtree(self.control_dir, ignore_errors=True)
        if self.opt.active_nodes:
            self._write(self.opt.active_nodes, write_active, self.opt.active_nodes, [])
        if self.joblog:
            self._write(self.opt.joblog, self.joblog.close)
        self._write("job output", self.printer.flush)
        self._write("job output", self.printer.close)
        self._drain_output()
        if self.status is not None:
            self._draw_status(force=True)
            self.status.close()

    # ---- the loop -----------------------------------------------------
    def _loop(self):
        while True:
            self._dispatch()
            if self.sched.done():
                return
            if not self.sched.busy and not (self.opt.ssh_delay and self.clock() < self.next_connect):
                continue  # done() brought nodes back: dispatch to them before sleeping
            if not self.sched.pending():
                self._release_idle()
            self._sync_output()
            for key, _ in self.sel.select(self._timeout()):
                kind, idx = key.data
                if kind == "conn":
                    self._drain(idx)
                elif kind == "dead":
                    self._died(idx)
                elif kind == "out":
                    self._write("job output", self.printer.pump)
                elif kind == "gone":
                    self._reaped(idx)
                else:
                    self._wake(key.fileobj)
            self._write("job output", self.printer.flush)
            if self.printer.stdout_closed and self.signal is None:
                self.signals.append(signal.SIGPIPE)  # like a shell command whose reader left
            self._handle_signals()
            self._periodic()

    def _timeout(self):
        now = self.clock()
        waits = []
        if self.status is not None:
            waits.append(self.status.interval)
        if self.active_dirty:
            waits.append(self.active_last + ACTIVE_INTERVAL - now)
        if self.kill_at is not None:
            waits.append(self.kill_at - now)
        if self.opt.ssh_delay and self.sched.pending() and self.next_connect > now:
            waits.append(self.next_connect - now)
        # a bounded wait even for a month-long --ssh-delay: epoll takes no timeout past about 24 days
        return min(MAX_WAIT, max(0.0, min(waits))) if waits else None

    def _sync_output(self):
        """Watch the output descriptors whose reader is behind; past OUTPUT_HIGH, stop reading workers."""
        waiting = self.printer.waiting()
        for fd in self.out_fds - set(waiting):
            self.sel.unregister(fd)
            self.out_fds.discard(fd)
        for fd in set(waiting) - self.out_fds:
            self.sel.register(fd, selectors.EVENT_WRITE, ("out", fd))
            self.out_fds.add(fd)
        # once interrupted, workers are read whatever waits: their ends must be heard
        pause = sum(waiting.values()) > OUTPUT_HIGH and self.signal is None
        if pause != self.paused:
            self.paused = pause
            for idx, s in enumerate(self.slots):
                if s.conn is None:
                    continue
                if pause:
                    self.sel.unregister(s.conn)
                else:
                    self.sel.register(s.conn, selectors.EVENT_READ, ("conn", idx))

    def _drain_output(self):
        """At the end: wait until the readers took all job output; a signal gives them INTERRUPT_GRACE more."""
        deadline = self.clock() + INTERRUPT_GRACE if self.signal is not None else None
        while self.printer.waiting():
            if deadline is not None and self.clock() >= deadline:
                n = self.printer.drop_waiting()
                self._log(f"{n} bytes of job output were not written: their reader did not take them")
                break
            self._sync_output()
            for key, _ in self.sel.select(min(0.5, deadline - self.clock()) if deadline else 0.5):
                if key.data[0] == "out":
                    self._write("job output", self.printer.pump)
                elif key.data[0] == "wake":
                    self._wake(key.fileobj)
            if self.signals and deadline is None:
                deadline = self.clock() + INTERRUPT_GRACE
                fatal = [sig for sig in self.signals if sig != signal.SIGUSR1]
                if fatal and self.signal is None:
                    self.signal = fatal[0]  # every job had ended; the wait for the reader was cut short
        for fd in self.out_fds:
            self.sel.unregister(fd)
        self.out_fds.clear()

    def _dispatch(self):
        if self.paused:
            return  # the reader of our output is behind: no new job adds to what waits
        if self.opt.ssh_delay and self.clock() < self.next_connect:
            return
        # with --ssh-delay, one connection a turn
        live = {i for i, s in enumerate(self.slots) if s.proc is not None}
        batch = self.sched.assign(1 if self.opt.ssh_delay else None, prefer=live)
        for idx, job in batch:
            s = self.slots[idx]
            s.started = time.time()
            if not self._write("job output", self.printer.attempt_started, job.seq):
                self.sched.unassign(idx)  # its output has nowhere to go: it does not start
                continue
            if s.proc is None:
                self._make_room()
                if not self._fork(idx, job):
                    continue
            else:
                try:
                    s.conn.send(job)
                except (OSError, ValueError):
                    self._died(idx)
                    continue
            self.active_dirty = True
            if self.opt.ssh_delay:
                self.next_connect = self.clock() + self.opt.ssh_delay

    def _drain(self, idx):
        """One message of a ready worker: an event or a list of them (epoll calls again for more)."""
        conn = self.slots[idx].conn
        if conn is None:
            return  # its death was handled earlier in this same wake-up
        try:
            message = conn.recv()
        except (EOFError, OSError):
            self._died(idx)
            return
        self._handle(idx, message)

    def _handle(self, idx, message):
        node = self.sched.slots[idx].node
        for ev in message if isinstance(message, list) else (message,):
            if isinstance(ev, Output):
                self._write("job output", self.printer.output, node, ev.seq, ev.stream, ev.data)
            elif isinstance(ev, Finished):
                self._finished(ev)
            elif isinstance(ev, Connected):
                self.sched.connected(ev.slot)
            elif isinstance(ev, Notice) and self.opt.verbose:
                self._log(f"{node}: {ev.text}")

    def _finished(self, ev):
        node = self.sched.nodes[self.sched.slots[ev.slot].node]
        was = node.status
        att = self.sched.finished(ev.slot, ev.exit, ev.start, ev.runtime, ev.timed_out, ev.ssh_error, ev.never_ran)
        self._record(att)
        self._release_finished(ev.slot)
        if was != "retired" and node.status == "retired":
            self._log(f"node {node.name} retired: {node.reason}")

    def _record(self, att):
        if att is None:
            return
        self._write("job output", self.printer.attempt_ended, att.seq)
        if self.joblog and att.outcome in (SUCCEEDED, FAILED):
            self._write(self.opt.joblog, self.joblog.write, att)
        self.active_dirty = True
        if self.opt.verbose:
            self._log(f"job {att.seq} on {att.node}: {att.outcome}" + (f" ({att.reason})" if att.reason else ""))

    def _log(self, msg):
        if self.status is not None:
            self.status.clear()
        try:
            self.printer.flush()
        except OSError:
            pass  # said by whoever writes next
        self.log(msg)

    def _busy_slots(self):
        return [s.index for s in self.sched.slots if s.busy is not None]

    def _died(self, idx):
        """A worker exited. Expected at shutdown; otherwise end its ssh, requeue, replace it."""
        s = self.slots[idx]
        if s.proc is None:
            return
        messages = []
        try:
            while s.conn.poll():
                messages.append(s.conn.recv())  # what it sent before dying still counts
        except (EOFError, OSError):
            pass
        for message in messages:
            self._handle(idx, message)
        proc = self._forget(idx)
        proc.join(1.0)
        pid = self.board.pid[idx]
        if pid:
            end_group(pid, grace=0)  # the orphaned ssh of the dead worker
            self.board.pid[idx] = 0
            try:
                os.waitpid(pid, 0)  # re-parented to us, the subreaper: reap it
            except ChildProcessError:
                pass
        self.board.state[idx] = GONE
        slot = self.sched.slots[idx]
        if slot.busy is not None:
            self._log(f"worker of slot {idx} ({slot.node}) died (exit {proc.exitcode}); its job goes back")
            self._record(self.sched.worker_died(idx, s.started, time.time() - s.started))
        # a replacement is forked when the slot is next given a job

    def _wake(self, sock):
        try:
            while sock.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _handle_signals(self):
        while self.signals:
            sig = self.signals.pop(0)
            if sig == signal.SIGUSR1:
                self._dump_running()
                continue
            if self.signal is None:
                self.signal = sig
                self.sched.interrupt("interrupted")
                self.kill_at = self.clock() + INTERRUPT_GRACE
                if sig != signal.SIGPIPE:
                    self._log(f"{signal.Signals(sig).name}: stopping, ending {self.sched.busy} running jobs")
            else:
                self.kill_at = self.clock()  # a second signal: no grace
        if self.signal is not None:
            self._end_running()

    def _end_running(self):
        """TERM every running ssh (again for any started since); KILL them and their workers once due."""
        kill = self.clock() >= self.kill_at
        for idx in self._busy_slots():
            pid = self.board.pid[idx]
            if pid and (pid not in self.killed or kill):
                self.killed.add(pid)
                try:
                    os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        if kill and self.clock() >= self.kill_at + 1.0:
            # workers that still have not reported: they go, their jobs are not run
            for idx in self._busy_slots():
                if self.slots[idx].proc is not None:
                    self.slots[idx].proc.kill()
                self._died(idx)

    def _dump_running(self):
        now = time.time()
        running = self.sched.running()
        self._log(f"{len(running)} jobs running:")
        for idx, (node, seq, cmd) in sorted(running.items()):
            self._log(f"  {node}: job {seq} {cmd!r}, running for {now - self.slots[idx].started:.1f}s")

    def _draw_status(self, force=False):
        c = self.sched.counts()
        complete = c[SUCCEEDED] + c[FAILED] + c[NOT_RUN]
        total = len(self.sched.jobs)
        usable = sum(1 for s in self.sched.slots if not s.retired and self.sched.nodes[s.node].status != "retired")
        rate, eta = self.rate.figures(complete, total) if self.status.tty else (None, None)
        line = status_line(complete, total, self.board.busy(), usable, c[FAILED],
                           len(self.sched.retired_nodes()), rate, eta)
        self.status.update(line, force=force, fraction=complete / total if total else 1.0)

    def _periodic(self):
        if self.status is not None and self.status.due():
            self._draw_status()
        if self.active_dirty and self.opt.active_nodes:
            now = self.clock()
            if now - self.active_last >= ACTIVE_INTERVAL:
                self.active_last = now
                self.active_dirty = False
                self._write(self.opt.active_nodes, write_active, self.opt.active_nodes,
                            [(n, c) for n, _, c in self.sched.running().values()])
        elif self.active_dirty:
            self.active_dirty = False


def stderr_log(stream=None):
    """A log function writing ``clstr: message`` lines to stderr; a stderr gone silences it, nothing more."""
    stream = stream or sys.stderr
    gone = []

    def log(msg):
        if gone:
            return
        try:
            stream.write(f"clstr: {msg}\n")
            stream.flush()
        except (OSError, ValueError):
            gone.append(True)
            silence(stream)
    return log

