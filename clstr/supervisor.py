"""The one event loop: joins the scheduler, the slot pool and the output; handles signals.

Jobs go to the slot pool (pool.py, whose docstring is the contract) and its events come back:
``Connected``, ``Output``, ``Finished``, ``Deferred``, ``Notice``. The supervisor waits on
every descriptor with one epoll selector (the workers' pipes and sentinels, the output a slow
reader holds up, a signal wake-up socket), each registered with the handler it calls, so it
sleeps when there is nothing to do. Its reactions (``dispatch``, ``on_events``, ``on_death``,
``on_signal``) are methods a test drives with a scripted history. It is the only writer of the
terminal, the job log and the files, and it makes the RunResult.
"""
import gc
import multiprocessing
import os
import resource
import selectors
import signal
import socket
import sys
import time

from . import controldir, execslot, loopslot, reaper, remotepool, result, slots, ssh, transfer, transports
from .events import Connected, Deferred, Finished, Notice, Output, Recalled
from .cargo import Cargo
from .joblog import JobLog
from .lookahead import Holders
from .monitor import Monitor
from .narration import Narrator
from .output import Backlog, silence
from .pool import WorkerPool
from .proc import catch_signals, drain, restore_signals, spawn_error
from .scheduler import FAILED, PROBE, SUCCEEDED
from .ssh import marks_of
from .status import duration
from .stopping import Stopping
from .worker import MAX_WAIT, WorkerSpec, worker_main
from .words import counted

# a live node list may grow the run by this many slots, or to twice its first size if more: the
# shared status board is sized once, before any worker is forked
GROWTH = 1024


class Supervisor:
    """Runs the jobs of a Scheduler on worker processes and reports to a Printer."""

    def __init__(self, scheduler, options, printer, status=None, log=None, clock=time.monotonic,
                 worker=worker_main, process=None, joblog=None, pool=None, kinds=()):
        """``worker``: the body run in each forked slot process (tests script it); ``process``:
        what makes the process (a bare fork unless a test gives another); ``pool``: what makes
        the slot pool (pool.WorkerPool unless a test gives one without processes); ``kinds``:
        kinds of slot (slots.Kind) offered each attempt before the forked workers."""
        self.sched = scheduler
        self.worker = worker
        self.opt = options
        self.printer = printer
        self.status = status
        self.log = log or (lambda msg: None)
        self.clock = clock
        self.ctx = multiprocessing.get_context("fork")
        self.run_id = os.urandom(16).hex()
        self.nslots = len(scheduler.slots)
        self.sel = selectors.DefaultSelector()
        capacity = self.nslots + max(GROWTH, self.nslots) if options.node_source is not None else None
        self.pool = (pool or WorkerPool)(self.ctx, self.nslots, worker, self._worker_spec, self.sel, process, capacity,
                                         (self.on_message, self.on_death, self.on_reaped))
        self.board = self.pool.board
        self.started = [0.0] * self.nslots  # when each slot's running attempt started (epoch)
        self.env = dict(os.environ, **{reaper.MARKER: self.run_id})
        self.gw = None  # remotepool.GatewayPool: the run's gateways (their routes), if it has any
        self.worker_group = {}  # slot -> the connection group its live worker was started for
        # the kinds of slot (slots.py), in the order they are offered an attempt; run() puts the
        # run's others before the forked workers
        self.forked = slots.Forked(self.pool, scheduler.slots, self.worker_group, scheduler.policy.max_running,
                                   self._left_out, self.on_death, clock)
        self.kinds = list(kinds) + [self.forked]
        self.held = Holders(scheduler.ahead, self._running)  # the jobs slots hold to run next
        self.paused = False  # the reader of our output is behind: no slot is read, no job starts
        self.own_workers = pool is None and worker is worker_main  # not a test's scripted ones
        self.control = None  # controldir.ControlPaths (PersistentPaths with --persist), with shared connections
        self.masters = {True: 0, False: 0, None: 0}  # --persist: connections reused, opened, found dead
        self.say = Narrator(self._log, options.verbose, scheduler, clock)  # what the run says as it goes
        self.stop = Stopping(scheduler, self.board, self.kinds, clock, self._log, self._dump_running)
        self.cargo = Cargo(options, scheduler, self._log)  # what jobs carry: their files, sudo's password
        self.joblog = joblog  # an open JobLog, or opened from options.joblog at the start
        self.t_start = time.time()
        self.monitor = Monitor(scheduler, self.board, status, options.state, options.active_nodes, self._write, clock,
                               self.t_start, self.started)
        self.next_connect = 0.0
        self.write_error = None  # the first write that failed: no job starts after it
        self.backlog = Backlog(printer, self.sel, lambda: self._write("job output", self.printer.pump))

    # ---- setup and teardown -------------------------------------------
    def run(self):
        """Run every job; returns the RunResult. Leaves no process of the run behind."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self.sel.register(wake_r, selectors.EVENT_READ, lambda: drain(wake_r))
        old = catch_signals(wake_w, self.stop.heard)
        self.subreaper = reaper.subreaper(True)
        old_limit = self.pool.raise_fd_limit()
        try:
            if self.opt.joblog and self.joblog is None:
                self.joblog = JobLog(self.opt.joblog)
            if self.opt.multiplex and self.opt.persist is not None:
                self.control = controldir.PersistentPaths(ssh.base_argv(self.opt.ssh))
            elif self.opt.multiplex:
                self.control = controldir.ControlPaths(self.sched.nodes, self.pool.capacity)
            wrapper, loop = marks_of(self.opt.ssh)  # built once here, shared by every worker
            self.forked.lookahead = self.own_workers and lookahead(self.opt, self.sched.policy, loop)
            if self.own_workers and loopslot.eligible(self.opt, loop, self.forked.lookahead):
                self.kinds.insert(0, loopslot.LocalLoops(self.opt, loop, self.env, self.sel, self.board,
                                                         self.sched.slots, self.on_events, self._left_out))
            if self.own_workers and execslot.eligible(self.opt, wrapper, loop):
                execs = execslot.ExecSlots(self.opt, self.env, self.sel, self.board, self.on_events,
                                           lambda: self.sched.stopped is not None)
                self.kinds.insert(0, slots.Exec(execs, self.sched.slots, self.control, self._left_out))
            if self.opt.routes:
                self._start_gateways()
            gc.freeze()  # forked workers then share the supervisor's objects without copying them
            self._loop()
        finally:
            gc.unfreeze()
            self._shutdown()
            if old_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, old_limit)
            restore_signals(old)
            self.sel.close()
            wake_r.close()
            wake_w.close()
        return self.result()

    def result(self):
        """What the run did, as it stands: the RunResult."""
        return result.of_run(self.sched, self.stop.signal, self.write_error, self.t_start, time.time(), self.gw)

    def _node_list(self, wanted):
        """A live node list was read again: nodes added join, nodes removed go."""
        before = len(self.sched.slots)
        added, removed = self.sched.resize(wanted)
        fresh = len(self.sched.slots) - before
        room = self.pool.grow(fresh)
        self.started.extend([0.0] * room)
        for idx in range(before + room, before + fresh):
            self.sched.slot_lost(idx)  # past the capacity: never used
            self.started.append(0.0)
        if fresh > room:
            self._log(f"{counted(fresh - room, 'slot')} not added: a run grows by at most "
                      f"{counted(self.pool.capacity - before + room, 'slot')}")
        self.nslots = len(self.sched.slots)
        self.held.take_back(recheck=True)  # held by slots removed
        self.say.node_list(added, removed)

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

    def _worker_spec(self, idx):
        slot = self.sched.slots[idx]
        self.worker_group[idx] = slot.group
        return WorkerSpec(idx, slot.node, self.opt.ssh, self.env,
                          transports.control_path(self.control, self.opt.ssh, slot.node, slot.group),
                          self.opt.timeout, self.opt.idle_timeout, self.opt.files, self.opt.persist)

    # ---- gateways --------------------------------------------------------
    def _start_gateways(self):
        """Start the run's gateways (each up or refused before any job starts) and route the nodes;
        they are the first kind of slot offered an attempt."""
        kind = slots.Gateway(self.sched, self._finished)
        self.gw = kind.gw = remotepool.GatewayPool(
            self.opt.routes, list(self.sched.nodes), self.opt, self.env, self.sel,
            (self.on_events, self._worker_gone, kind.lost, lambda idx: self.sched.slots[idx].busy),
            self._log, self.clock, self.opt.gateway_python, self.opt.gateway_fallback, self.opt.verbose,
            self.sched.policy.reprobe or 30.0)
        self.gw.start(self.pool.capacity)
        self.monitor.gateways = self.gw.states
        kind.route_all()
        self.kinds.insert(0, kind)

    def _left_out(self, idx, job, what, e):
        """Slot ``idx`` could not start ``job`` (no process or descriptor left): it is left out of
        the run and the job, which never ran, goes back to the queue. Returns False."""
        self._log(f"slot {idx} ({self.sched.slots[idx].node}) left out: {what} ({spawn_error(e)})")
        if job.seq != PROBE:
            self._write("job output", self.printer.attempt_ended, job.seq)
        self.sched.slot_lost(idx)
        return False

    def _release_finished(self, idx):
        """A slot's attempt ended: its worker goes at once where the slot can get no further job
        (or, for a forked worker, where the slot moved to a connection of its own)."""
        keep = self.sched.has_future(idx)
        for kind in self.kinds:
            kind.ended(idx, keep)

    def _release_idle(self):
        """Let idle workers go once nothing waits: exits spread over the run, not all at the end.

        Should a failure re-queue a job later, its slot simply starts a new worker.
        """
        for kind in self.kinds:
            kind.idle(lambda idx: self.sched.slots[idx].busy is None)

    def _shutdown(self):
        self.say.unwaited(self.started)  # connections not waited for (their job went elsewhere)
        self.cargo.clean(self.kinds, self.control, self.env, self.clock)
        for kind in self.kinds:
            kind.shutdown()
        transports.sweep(self.opt.ssh, self.env)  # what a transport keeps beyond its processes here
        if self.opt.files is not None:
            transfer.unmark(self.opt.files, self.opt.job_files, self.opt.ssh.mark)  # a killed worker's
        # the backstop: anything of the run still alive (masters included) ends now
        reaper.reap(self.run_id, descendants_only=self.subreaper)
        if self.subreaper:
            reaper.subreaper(False)
        if self.control:
            self.control.remove()
        if self.opt.persist is not None and self.opt.verbose:
            dead = f", {self.masters[None]} found dead" if self.masters[None] else ""
            self._log(f"--persist: {counted(self.masters[True], 'connection')} reused, {self.masters[False]} opened"
                      f"{dead} (they stay {duration(self.opt.persist)} idle; clstr --persist-stop ends them)")
        self.monitor.end()
        if self.joblog:
            self._write(self.opt.joblog, self.joblog.close)
        self._write("job output", self.printer.flush)
        self._write("job output", self.printer.close)
        self.backlog.drain(self.stop, self.clock, self._log, self._sync_output)
        self.monitor.close()

    # ---- the loop -----------------------------------------------------
    def _loop(self):
        while True:
            self.sched.tick(self.clock(), time.time())
            self.dispatch()
            done = self.sched.done()
            self._node_news()
            if done:
                return
            if not self.sched.busy and not (self.opt.ssh_delay and self.clock() < self.next_connect) \
                    and self.sched.next_due() is None:
                continue  # done() brought nodes back: dispatch to them before sleeping
            if not self.sched.pending():
                self._release_idle()
            self._sync_output()
            ready = self.sel.select(self._timeout())
            # what arrived is judged at the time it arrived (a node a job's end retired left then)
            self.sched.tick(self.clock(), time.time())
            for key, _ in ready:
                key.data()  # each descriptor is registered with what handles it
            for kind in self.kinds:
                kind.tick(self.clock())
            self._write("job output", self.printer.flush)
            if self.printer.stdout_closed and self.stop.signal is None:
                self.stop.heard(signal.SIGPIPE)  # like a shell command whose reader left
            self.stop.handle()
            self._node_news()
            self._periodic()

    def _timeout(self):
        now = self.clock()
        waits = self.monitor.waits(now)
        if self.stop.kill_at is not None:
            waits.append(self.stop.kill_at - now)
        if self.opt.node_source is not None:
            waits.append(self.opt.node_source.next_at - now)
        if self.opt.ssh_delay and self.sched.pending() and self.next_connect > now:
            waits.append(self.next_connect - now)
        due = self.sched.next_due() if self.sched.pending() else None
        if due is not None:
            waits.append(due - now)
        for kind in self.kinds:
            due = kind.next_due()
            if due is not None:
                waits.append(due - now)
        # a bounded wait even for a month-long --ssh-delay: epoll takes no timeout past about 24 days
        return min(MAX_WAIT, max(0.0, min(waits))) if waits else None

    def _sync_output(self):
        """Watch the output a reader is behind on; past its bound, stop reading the slots."""
        # once interrupted, slots are read whatever waits: their ends must be heard
        self.paused = self.backlog.sync() and self.stop.signal is None
        for kind in self.kinds:
            kind.pause(self.paused)

    def dispatch(self):
        """Start what the scheduler assigns: each job down its slot's channel (a worker started for it)."""
        if self.paused:
            return  # the reader of our output is behind: no new job adds to what waits
        if self.opt.ssh_delay and self.clock() < self.next_connect:
            return
        # with --ssh-delay, one connection a turn
        batch = self.sched.assign(1 if self.opt.ssh_delay else None,
                                  prefer=set().union(*(kind.live_slots() for kind in self.kinds)))
        for idx, job in batch:
            self.started[idx] = time.time()
            job = self.cargo.load(idx, job)  # its files, sudo's password
            if job.seq == PROBE:
                if self.opt.verbose:
                    self._log(f"node {self.sched.slots[idx].node}: probing")
            elif not self._write("job output", self.printer.attempt_started, job.seq, self.sched.slots[idx].node):
                self.sched.unassign(idx)  # its output has nowhere to go: it does not start
                continue
            if not self._take(idx, job):
                continue
            self.monitor.changed()
            if self.opt.ssh_delay:
                self.next_connect = self.clock() + self.opt.ssh_delay
        if self._hand_over() or self.held.take_back():
            self.dispatch()
        self.held.give()  # lookahead.py

    def _settle_held(self, idx):
        """Slot ``idx``'s job ended (or its worker died): the job it held went back, or its worker
        started it already (then the slot runs it). True if it runs."""
        seq = self.held.settle(idx)
        if seq is None:
            return False
        self.started[idx] = time.time()
        self._write("job output", self.printer.attempt_started, seq, self.sched.slots[idx].node)
        self.monitor.changed()
        return True

    def _hand_over(self):
        """Nothing waits, and slots are ready: the jobs of slots still connecting go to them, where
        the slot's kind is sure the job will not start (scheduler.withdrawals). True if one did."""
        moved = False
        for idx, to in self.sched.withdrawals():
            kind = self._running(idx)
            if kind is None or not kind.withdraw(idx):
                continue
            seq, node = self.sched.slots[idx].busy, self.sched.slots[idx].node
            self.sched.withdrawn(idx, to)
            moved = True
            self.say.handed(seq, node, time.time() - self.started[idx], self.sched.slots[to].node)
        return moved

    def _take(self, idx, job):
        """The first kind of slot that drives slot ``idx`` now starts its attempt; the others let
        their worker of the slot go. False if it could not start (recorded)."""
        for taker in self.kinds:
            taken = taker.take(idx, job)
            if taken != slots.NOT_MINE:
                break
        for kind in self.kinds:
            if kind is not taker:
                kind.release(idx)
        return taken == slots.STARTED

    # ---- reactions: the loop calls them as descriptors wake; tests drive them with scripted events
    def on_message(self, idx):
        """A slot's worker is ready: one message of it (epoll calls again for more)."""
        self.pool.deliver(idx, self.on_events, self.on_death)

    def on_reaped(self, proc):
        """A worker told to go has gone: reap it."""
        self.pool.reaped(proc)

    def on_events(self, idx, message):
        """What slot ``idx``'s worker sent: an event or a list of them, in the order they happened."""
        node = self.sched.slots[idx].node
        for ev in message if isinstance(message, list) else (message,):
            if isinstance(ev, Output):
                if ev.seq == PROBE:
                    continue  # what a login prints, or nothing: not a job's output
                self._write("job output", self.printer.output, node, ev.seq, ev.stream, ev.data)
            elif isinstance(ev, Finished):
                self._finished(ev)
            elif isinstance(ev, Deferred):
                self._deferred(ev)
            elif isinstance(ev, Recalled):
                self.held.take_back(recheck=True)  # a job sent ahead that it asked back will not start
            elif isinstance(ev, Connected):
                self.sched.connected(ev.slot)
                if ev.reused is not None:
                    self.masters[ev.reused] += 1
            elif isinstance(ev, Notice) and ev.replaced:
                self.masters[True] -= 1
                self.masters[None] += 1
                if self.opt.verbose:
                    self._log(f"{node}: {ev.text}")
            elif isinstance(ev, Notice) and self.opt.verbose:
                self._log(f"{node}: {ev.text}")

    def _deferred(self, ev):
        self.sched.deferred(ev)
        if ev.password:
            self.cargo.ask_sudo(self.sched.slots[ev.slot].node,
                                lambda: bool(self.stop.signals) or self.stop.signal is not None)
        self.say.deferred(ev, self.sched.slots[ev.slot].node)
        self._release_finished(ev.slot)

    def _finished(self, ev):
        att = self.sched.finished(self.cargo.unload(ev))
        self._record(att)
        if self._settle_held(ev.slot):
            # the slot runs its held job: the next goes to it now, to be sent ahead; the output
            # before it first, so that a write that fails stops the run before it is given, and
            # not while a signal waits to be handled (it may stop the run)
            if self._write("job output", self.printer.flush) and not self.stop.signals:
                self.held.give()
        else:
            self._release_finished(ev.slot)
        if att is not None and att.outcome == SUCCEEDED:
            self._limit_running()

    def _limit_running(self):
        """Give the jobs that started before the median was known their straggler limit."""
        for idx, limit in self.sched.unlimited():
            kind = self._running(idx)
            if kind is not None:
                self.sched.limit_given(idx)
                kind.limit(idx, limit)

    def _running(self, idx):
        """The kind of slot that runs slot ``idx``'s attempt now, or None."""
        return next((kind for kind in self.kinds if kind.runs(idx)), None)

    def _node_news(self):
        """Say when a node left the run, came back, or (under -v) failed a probe."""
        news, self.sched.news = self.sched.news, []
        for what, node in news:
            if what == "retired":
                for kind in self.kinds:
                    kind.node_left(node.name)
                self.held.take_back(recheck=True)  # its slots' held jobs go elsewhere
            self.say.node(what, node)

    def _record(self, att):
        if att is None:
            return
        tail = self.printer.tails.take(att.seq)  # why it failed, in its own words (--json, the report)
        if att.outcome != SUCCEEDED:
            att.stderr = tail
        self._write("job output", self.printer.attempt_ended, att.seq)
        if self.joblog and att.outcome in (SUCCEEDED, FAILED):
            self._write(self.opt.joblog, self.joblog.write, att)
        self.monitor.changed()
        self.say.ended(att)

    def _log(self, msg):
        if self.status is not None:
            self.status.clear()
        try:
            self.printer.flush()
        except OSError:
            pass  # said by whoever writes next
        self.log(msg)

    def on_death(self, idx):
        """A worker exited. Expected at shutdown; otherwise its ssh ends, its job goes back.

        A replacement is forked when the slot is next given a job.
        """
        if not self.pool.live(idx):
            return
        messages, exitcode = self.pool.died(idx)
        for message in messages:
            self.on_events(idx, message)
        self._worker_gone(idx, f"exit {exitcode}")

    def _worker_gone(self, idx, why):
        """The slot's worker died: the job it ran, if any, goes back (a worker death)."""
        slot = self.sched.slots[idx]
        if slot.busy is not None:
            self._log(f"worker of slot {idx} ({slot.node}) died ({why}); its job goes back")
            started = self.started[idx]
            self._record(self.sched.worker_died(idx, started, time.time() - started))
            if self._settle_held(idx):  # it had started its held job too
                self._record(self.sched.worker_died(idx, self.started[idx], 0.0))

    def on_signal(self, sig):
        """A signal came (the loop hears it through the wake-up socket)."""
        self.stop.heard(sig)
        self.stop.handle()

    def _dump_running(self):
        self.say.running(self.started)

    def _periodic(self):
        self.monitor.tick(self.stop.signal is not None or self.sched.halted is not None)
        if self.opt.node_source is not None:
            wanted = self.opt.node_source.poll(self.clock(), self._log)
            if wanted is not None:
                self._node_list(wanted)


def lookahead(opt, policy, loop):
    """Whether the run's forked workers hold a job ahead (lookahead.py): a pipelined run (the job
    loop) whose jobs need nothing of the supervisor between them: no files, no sudo, no --halt (no
    job starts once it is reached), no straggler limits, no --ssh-delay."""
    return loop is not None and opt.files is None and opt.ssh.sudo is None and policy.halt is None \
        and policy.straggler_percent is None and not opt.ssh_delay


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

