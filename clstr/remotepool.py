"""The root's side of gateways: each a pool of remote slots behind one ssh session.

A Gateway is that session (``ssh GW python3 -c BOOT``, gateway.py) and what the root knows of
it: its state (STARTING, UP, REFUSED, LOST), the root's slots with a worker there and those
with an attempt running there. GatewayPool starts them, routes each node to one, writes jobs
down and turns the frames that come back into the events of pool.py's contract, handed to the
supervisor as a local worker's are. A gateway's session that ends, an error or malformed frame,
or a silence longer than its beats allow is the gateway LOST: each attempt running under it
ends LOST ("gateway gw1 lost: ..."), an attempt spent as for a node lost mid-job, and the
supervisor retires its nodes; the gateway is started again after a while (``retry``).
"""
import base64
import collections
import dataclasses
import os
import selectors
import signal
import time

from . import execslot, frames, gateway, hostlist, ssh, transfer
from .events import Finished
from .proc import PIPE, Child, end_group
from .result import Ending
from .words import counted

STARTING, UP, REFUSED, LOST = "starting", "up", "refused", "lost"
UNREACHABLE = object()  # a node whose gateways are all down, with --gateway-fallback none
START_EXTRA = 20.0  # besides ssh's connect timeout: python's start, the zipapp sent, the hello
OUT_HIGH = 4 << 20  # frames queued for a gateway's stdin: a file's next pieces are read past this only
STDERR_KEEP = 2048  # what a gateway's ssh said on stderr, kept to say why it was refused or lost


def judge_hello(frame, version, protocol=frames.PROTOCOL):
    """Why a gateway's hello refuses it (None: it is accepted)."""
    python = frame.get("python")
    if not isinstance(python, str):
        return "its hello names no python version"
    try:
        major_minor = tuple(int(x) for x in python.split(".")[:2])
    except ValueError:
        return f"python {python!r} there"
    if major_minor < (3, 9):
        return f"python {python} there, clstr needs 3.9 or later"
    if frame.get("proto") != protocol:
        return f"it speaks gateway protocol {frame.get('proto')!r}, this clstr {protocol}"
    if frame.get("clstr") != version:
        return f"clstr {frame.get('clstr')!r} there, {version} here"
    return None


class Gateway:
    """One gateway's session and what the root knows of it."""

    def __init__(self, name, nodes):
        self.name = name
        self.nodes = nodes  # the run's nodes it reaches (its own first)
        self.state = STARTING
        self.why = None  # why it was refused or lost
        self.child = None
        self.inbuf = b""
        self.outbuf = bytearray()
        self.queue = collections.deque()  # frames waiting for outbuf's room: bytes, or a file's frames
        self.puts = {}  # (path here, size, mtime) -> its put id on this session
        self.got = {}  # root slot -> {k: [fd, temporary path, why it failed]}: files coming back
        self.err = b""
        self.last_in = 0.0
        self.started = 0.0
        self.up_at = None
        self.retry_at = None
        self.losses = 0
        self.last_loss = None  # why it was last lost (it may be up again)
        self.cpu = None  # CPU seconds its sessions said they used (their bye), summed
        self.running = set()  # root slots with an attempt running there
        self.live = set()  # root slots whose worker is there
        self.zipapp = None  # whether it runs the root's clstr sent as a zipapp
        self.info = ""
        self.writing = False  # its stdin is watched for room (frames wait to be written)


class GatewayPool:
    """The run's gateways (see the module docstring)."""

    def __init__(self, routes, nodes, opt, env, sel, callbacks, log, clock=time.monotonic, python="python3",
                 fallback="direct", verbose=False, retry=30.0):
        """``routes``: a routes.Routes; ``nodes``: the run's node names; ``callbacks``: (on_events(slot,
        events), on_died(slot, why), on_lost(gateway name), seq_of(slot): the job a slot runs); ``fallback``: where a node goes whose
        gateways are all down: ``direct`` (driven by the root) or ``none`` (it waits for one)."""
        self.routes = routes
        self.plan = routes.plan(nodes)
        self.gws = {gw: Gateway(gw, [n for n in nodes if n in self.plan and gw in self.plan[n]]) for gw in routes.order}
        self.current = {}  # node -> the gateway driving it now (None: the root)
        self.opt = opt
        self.env = env
        self.sel = sel
        self.on_events, self.on_died, self.on_lost, self.seq_of = callbacks
        # the running job's files to bring back (transfer.Returns), by slot
        self.returns_of = lambda idx: opt.job_files[self.seq_of(idx)].returns
        self.log = log
        self.clock = clock
        self.python = python
        self.fallback = fallback
        self.verbose = verbose
        self.retry = retry
        self.owner = {}  # root slot -> the gateway its live worker is on
        self.paused = False
        self.silence = max(3 * frames.BEAT, opt.ssh.alive_interval * opt.ssh.alive_count)
        self._zip = None
        self._base = ssh.base_argv(opt.ssh)
        # one job a slot and nothing to share: the gateways' slots are their ssh too
        self.exec_slots = execslot.eligible(opt, *ssh.marks_of(opt.ssh)) and not opt.multiplex
        self.nslots = 0
        self.closing = False  # the run is ending: a session that ends now is not a gateway lost
        self.cleaning = False  # a gateway was asked to clean up its nodes: the end waits for it

    # ---- starting ------------------------------------------------------
    def start(self, nslots):
        """Start every gateway and wait for each to be up or refused (bounded)."""
        self.nslots = nslots
        for gw in self.gws.values():
            self._spawn(gw)
        deadline = self.clock() + self.opt.ssh.connect_timeout + START_EXTRA
        while any(g.state == STARTING for g in self.gws.values()):
            left = deadline - self.clock()
            if left <= 0:
                for g in self.gws.values():
                    if g.state == STARTING:
                        self._refuse(g, f"no hello within {self.opt.ssh.connect_timeout + START_EXTRA:g} s")
                break
            for key, _ in self.sel.select(min(left, 1.0)):
                key.data()
        for node in self.plan:
            self.current[node] = self._choose(node)

    def _spawn(self, gw):
        self._drop_queue(gw)
        gw.state, gw.why, gw.inbuf, gw.outbuf, gw.err = STARTING, None, b"", bytearray(), b""
        gw.puts = {}
        gw.running, gw.live, gw.writing = set(), set(), False
        gw.started = gw.last_in = self.clock()
        argv = ssh.job_argv(self._base, gw.name, gateway.bootstrap(self.python), None)
        try:
            gw.child = Child(argv, self.env, PIPE, PIPE, PIPE)
        except OSError as e:
            gw.child = None
            self._refuse(gw, f"its ssh could not be started ({e.strerror or e})")
            return
        for fd in gw.child.fds.values():
            os.set_blocking(fd, False)
        self.sel.register(gw.child.fds[1], selectors.EVENT_READ, lambda: self._readable(gw))
        self.sel.register(gw.child.fds[2], selectors.EVENT_READ, lambda: self._stderr(gw))

    # ---- routing -------------------------------------------------------
    def _choose(self, node):
        for name in self.plan.get(node, ()):
            if self.gws[name].state == UP:
                return name
        if node in self.plan and self.fallback == "none":
            return UNREACHABLE
        return None

    def route(self, node):
        """Where the node's attempts go: a gateway's name, None (the root drives it) or UNREACHABLE.

        A node keeps its route while it is in the run (its connections are there); it changes only
        when the node is out (``reroute``), or its gateway is down."""
        if node not in self.plan:
            return None
        cur = self.current.get(node)
        if cur is UNREACHABLE or (cur is not None and self.gws[cur].state != UP):
            cur = self.current[node] = self._choose(node)
        return cur

    def reroute(self, node):
        """The node is out of the run (its gateway lost, or it failed): its next probe may go another way."""
        if node in self.plan:
            self.current[node] = self._choose(node)
        return self.current.get(node)

    def unreachable_why(self, node):
        downs = [f"{g} {self.gws[g].state}" for g in self.plan[node]]
        return "no gateway reaches it (" + ", ".join(downs) + ")"

    # ---- slots ---------------------------------------------------------
    def send(self, name, idx, node, group, job):
        """Start the attempt on the gateway; its files to send go first (each once a gateway).
        TransferError (nothing sent) if one of them cannot be read here."""
        gw = self.gws[name]
        puts = [self._put(gw, s.local) for s in job.files.sends] if job.files is not None else []
        for _, pieces in puts:
            if pieces is not None:
                self._write(gw, pieces)
        sends = [i for i, _ in puts]
        old = self.owner.get(idx)
        if old is not None and old != name:
            self.release(idx)
        gw.running.add(idx)
        gw.live.add(idx)
        self.owner[idx] = name
        self._write(gw, frames.job_out(idx, node, group, job, sends))

    # ---- files through the gateway ---------------------------------------
    def _put(self, gw, local):
        """(put id, its frames to queue or None if it was sent already) of the file ``local`` on
        this gateway; the frames are read as the gateway's stdin takes them: a large file is never
        whole in memory."""
        try:
            f = open(local, "rb")
            st = os.fstat(f.fileno())
        except OSError as e:
            raise transfer.TransferError(f"send: {local}: {e.strerror} here") from None
        key = (local, st.st_size, st.st_mtime_ns)
        if key in gw.puts:
            f.close()
            return gw.puts[key], None
        i = gw.puts[key] = len(gw.puts)
        return i, self._pieces(i, local, f, st)

    @staticmethod
    def _pieces(i, local, f, st):
        with f:
            left = st.st_size
            while True:
                data = f.read(min(transfer.CHUNK, left)) if left else b""
                left -= len(data)
                if left and not data:  # it shrank while it was read: the gateway drops it
                    yield frames.encode("put", id=i, name=local, mode=st.st_mode & 0o777, data="", more=False,
                                        error="it changed while it was sent")
                    return
                yield frames.encode("put", id=i, name=local, mode=st.st_mode & 0o777,
                                    data=base64.b64encode(data).decode(), more=bool(left))
                if not left:
                    return

    def _got(self, gw, idx, frame):
        """A piece of a file the slot's attempt brought back: written beside its place here."""
        k, mode = frames.field(frame, "k", int), frames.field(frame, "mode", int)
        data, more = frames.piece(frame)
        got = gw.got.setdefault(idx, {})
        entry = got.get(k)
        if entry is None:
            returns = self.returns_of(idx)
            if not 0 <= k < len(returns):
                raise frames.FrameError(f"got frame: no file {k} to bring back on slot {idx}")
            try:
                fd, tmp = transfer.open_partial(returns[k].local, mode, tag=f"{idx}-")
                entry = got[k] = [fd, tmp, None]
            except transfer.TransferError as e:
                entry = got[k] = [None, None, str(e)]
        if entry[0] is not None:
            try:
                transfer.write_all(entry[0], data)
            except OSError as e:
                entry[2] = f"return: {self.returns_of(idx)[k].local}: {e.strerror} here"
                os.close(entry[0])
                transfer.discard(entry[1])
                entry[0] = entry[1] = None
        if not more and entry[0] is not None:
            os.close(entry[0])
            entry[0] = -1

    def _with_got(self, gw, idx, ev):
        """The slot's Finished with the files it brought back, as a local worker's has them."""
        got = gw.got.pop(idx, {})
        if not got:
            return ev
        returns = self.returns_of(idx)
        failed = [e[2] for e in got.values() if e[2]]
        if failed or len(got) != len(returns) or ev.ending is not Ending.OK:
            self._discard(got)
            if failed and ev.ending is Ending.OK:
                return dataclasses.replace(ev, exit=255, ending=Ending.TRANSFER, reason=failed[0])
            return ev
        return dataclasses.replace(ev, returned=tuple((got[k][1], r.local) for k, r in enumerate(returns)))

    @staticmethod
    def _drop_queue(gw):
        for item in gw.queue:
            if not isinstance(item, (bytes, bytearray)):
                item.close()
        gw.queue.clear()

    @staticmethod
    def _discard(got):
        for fd, tmp, _ in got.values():
            if fd is not None and fd >= 0:
                os.close(fd)
            if tmp:
                transfer.discard(tmp)

    def cleanup(self, name, groups, line):
        """--cleanup at the end: the gateway runs ``line`` on these nodes (their connection groups)."""
        gw = self.gws[name]
        if gw.state == UP:
            self.cleaning = True
            self._write(gw, frames.encode("cleanup", nodes=[list(g) for g in groups], line=line))

    def running(self, idx):
        name = self.owner.get(idx)
        return name is not None and idx in self.gws[name].running

    def limit(self, idx, seconds):
        name = self.owner.get(idx)
        if name is not None:
            self._write(self.gws[name], frames.encode("limit", slot=idx, seconds=seconds))

    def release(self, idx):
        """The slot's worker on its gateway goes (it is idle)."""
        name = self.owner.pop(idx, None)
        if name is None:
            return
        gw = self.gws[name]
        gw.live.discard(idx)
        if gw.state == UP and idx not in gw.running:
            self._write(gw, frames.encode("release", slot=idx))

    def live_slots(self):
        return set(self.owner)

    # ---- the session ---------------------------------------------------
    def _write(self, gw, data):
        """Queue a frame (bytes) or the frames of a file (a generator of them) for the gateway."""
        if gw.child is None or gw.state not in (STARTING, UP):
            if not isinstance(data, (bytes, bytearray)):
                data.close()
            return
        first = not gw.outbuf and not gw.queue
        gw.queue.append(data)
        if first:
            self._flush(gw)

    def _flush(self, gw):
        """Write what waits for the gateway; what it does not take now waits for its stdin's room."""
        fd = gw.child.fds.get(0) if gw.child is not None else None
        if fd is None:
            return
        try:
            while gw.outbuf or gw.queue:
                while gw.queue and len(gw.outbuf) < OUT_HIGH:
                    item = gw.queue[0]
                    if isinstance(item, (bytes, bytearray)):
                        gw.outbuf += gw.queue.popleft()
                    else:
                        try:
                            gw.outbuf += next(item)
                        except StopIteration:
                            gw.queue.popleft()
                del gw.outbuf[:os.write(fd, gw.outbuf[:1 << 20])]
        except BlockingIOError:
            pass
        except OSError as e:
            gw.outbuf.clear()
            self._drop_queue(gw)
            self._fail(gw, f"its session does not take input ({e.strerror or e})")
            return
        if bool(gw.outbuf) != gw.writing:
            gw.writing = bool(gw.outbuf)
            if gw.writing:
                self.sel.register(fd, selectors.EVENT_WRITE, lambda: self._flush(gw))
            else:
                self.sel.unregister(fd)

    def _stderr(self, gw):
        if gw.child is None:
            return  # its session was closed earlier in this same wake-up
        try:
            data = os.read(gw.child.fds[2], 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(gw.child.fds[2])
            return
        gw.err = (gw.err + data)[-STDERR_KEEP:]

    def _readable(self, gw):
        if gw.child is not None:
            self._read_frames(gw)

    def _read_frames(self, gw):
        """Read and take the frames the gateway sent; False once its session ended."""
        try:
            data = os.read(gw.child.fds[1], 1 << 18)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            data = b""
        if not data:
            self._ended(gw)
            return False
        gw.last_in = self.clock()
        gw.inbuf += data
        try:
            while gw.child is not None:
                nl = gw.inbuf.find(b"\n")
                if nl < 0:
                    break
                line, gw.inbuf = gw.inbuf[:nl], gw.inbuf[nl + 1:]
                self._frame(gw, line)
            if len(gw.inbuf) > frames.MAX_FRAME:
                raise frames.FrameError("a line longer than any frame")
        except frames.FrameError as e:
            self._fail(gw, f"it sent what is not a frame of clstr's: {e}")
            return False
        return gw.child is not None

    def _frame(self, gw, line):
        if gw.state == STARTING:
            frame = frames.decode(line, ("need", "hello"))
            if frame["t"] == "need":
                if self._zip is None:
                    self._zip = gateway.zipapp()
                self._write(gw, b"%d\n" % len(self._zip) + self._zip)
                return
            why = judge_hello(frame, gateway.__version__)
            if why:
                self._refuse(gw, why)
                return
            gw.state, gw.up_at, gw.zipapp = UP, self.clock(), bool(frame.get("zipapp"))
            gw.info = (f"clstr {frame['clstr']} " + ("sent as a zipapp" if gw.zipapp else "installed")
                       + f", python {frame['python']}")
            if self.verbose:
                self.log(f"gateway {gw.name}: up in {gw.up_at - gw.started:.2f} s ({gw.info}), "
                         f"driving {counted(len(gw.nodes), 'node')}")
            files = self.opt.files
            try:
                bases = [self._put(gw, b.local) for b in files.basefiles] if files is not None else []
            except transfer.TransferError as e:
                self._fail(gw, f"a basefile cannot be sent: {e}")
                return
            self._write(gw, frames.setup_out(self.opt.ssh, self.opt.timeout, self.opt.idle_timeout, self.nslots,
                                             self.opt.multiplex, self.exec_slots,
                                             frames.files_out(files, [i for i, _ in bases])))
            for _, pieces in bases:
                if pieces is not None:
                    self._write(gw, pieces)
            return
        frame = frames.decode(line, ("ev", "died", "beat", "error", "bye", "got", "cleaned"))
        t = frame["t"]
        if t in ("beat", "cleaned"):
            return
        if t == "bye":
            gw.cpu = (gw.cpu or 0.0) + frames.field(frame, "cpu", float)
            return
        if t == "error":
            raise frames.FrameError(f"error: {frames.field(frame, 'text', str)}")
        idx = frames.field(frame, "slot", int)
        if idx not in gw.running:
            raise frames.FrameError(f"{t} frame for slot {idx}, which runs nothing there")
        if t == "got":
            self._got(gw, idx, frame)
            return
        if t == "died":
            self._discard(gw.got.pop(idx, {}))
            gw.running.discard(idx)
            gw.live.discard(idx)
            self.owner.pop(idx, None)
            why = frames.field(frame, "why", str, optional=True) or f"exit {frames.field(frame, 'exit', int)}"
            self.on_died(idx, f"on gateway {gw.name}: {why}")
            return
        events = [frames.event_in(d, idx) for d in frames.field(frame, "e", list)]
        running = self.seq_of(idx)
        for ev in events:
            if getattr(ev, "seq", running) != running:
                raise frames.FrameError(f"an event of job {ev.seq} on slot {idx}, which runs job {running}")
        ended = any(type(ev).__name__ in ("Finished", "Deferred") for ev in events)
        if ended:
            gw.running.discard(idx)
            events = [self._with_got(gw, idx, ev) if isinstance(ev, Finished) else ev for ev in events]
        self.on_events(idx, events)

    def _ended(self, gw):
        """The gateway's session ended (its stdout closed)."""
        code = self._close(gw)
        said = gw.err.decode("utf-8", "replace").strip().splitlines()
        tail = said[-1] if said else ""
        if gw.state == STARTING:
            if code == 127 or "not found" in tail:
                self._refuse(gw, f"no {self.python.split()[0]} there" + (f" ({tail})" if tail else ""))
            else:
                self._refuse(gw, ssh.classify(gw.err.decode("utf-8", "replace"))
                             if code == 255 else f"it exited with status {code}" + (f": {tail}" if tail else ""))
        elif gw.state == UP and not self.closing:
            what = "its session ended" if code is None else f"its ssh exited {code}"
            self._lose(gw, what + (f": {tail}" if tail else ""))

    def _close(self, gw):
        """End the gateway's ssh and close its pipes: its exit status (None if it had to be killed)."""
        child, gw.child = gw.child, None
        gw.writing = False
        self._drop_queue(gw)
        gw.outbuf = bytearray()
        if child is None:
            return None
        for fd in child.fds.values():
            try:
                self.sel.unregister(fd)
            except (KeyError, ValueError):
                pass
        child.close()
        code = child.wait(0.5)
        if code is None:
            end_group(child.pid, grace=0.5)
            child.wait()
        return code

    def _fail(self, gw, why):
        if gw.state == STARTING:
            self._close(gw)
            self._refuse(gw, why)
        else:
            self._kill(gw)
            self._lose(gw, why)

    def _kill(self, gw):
        if gw.child is not None:
            end_group(gw.child.pid, grace=0)
        self._close(gw)

    def _refuse(self, gw, why):
        if gw.child is not None:
            self._kill(gw)
        if gw.losses:  # lost earlier and not back yet: tried again later
            gw.state, gw.why, gw.retry_at = LOST, f"{gw.why}; not back: {why}", self.clock() + self.retry
            if self.verbose:
                self.log(f"gateway {gw.name}: not back: {why}")
            return
        gw.state, gw.why = REFUSED, why
        gw.retry_at = None
        self.log(f"gateway {gw.name} refused: {why}; " + self._whereto(gw))

    def _whereto(self, gw):
        if not gw.nodes:
            return "it drives no node of this run"
        others = sorted({g for n in gw.nodes for g in self.plan[n] if g != gw.name and self.gws[g].state in (UP, STARTING)})
        where = (f"through {', '.join(others)}" if others else "") + (
            " or " if others and self.fallback == "direct" else "") + ("directly" if self.fallback == "direct" else "")
        if not where:
            return f"its {counted(len(gw.nodes), 'node')} wait for it (--gateway-fallback none)"
        return f"its {counted(len(gw.nodes), 'node')} ({hostlist.fold(gw.nodes)}) are driven {where}"

    def _lose(self, gw, why):
        """The gateway is lost mid-run: its running attempts end LOST, its nodes go (on_lost)."""
        if gw.state == LOST:
            return
        if gw.child is not None:
            self._kill(gw)
        gw.state, gw.why, gw.last_loss = LOST, why, why
        gw.losses += 1
        gw.retry_at = self.clock() + self.retry
        running, gw.running, gw.live = sorted(gw.running), set(), set()
        for got in gw.got.values():
            self._discard(got)
        gw.got = {}
        for idx in [i for i, g in self.owner.items() if g == gw.name]:
            del self.owner[idx]
        self.log(f"gateway {gw.name} lost: {why}; " + (f"{counted(len(running), 'running job')} go back, " if running
                                                       else "") + self._whereto(gw))
        reason = f"gateway {gw.name} lost"
        now = time.time()
        for idx in running:
            self.on_events(idx, [Finished(idx, self.seq_of(idx), 255, now, 0.0, Ending.LOST, reason)])
        self.on_lost(gw.name)

    # ---- the loop ------------------------------------------------------
    def tick(self, now):
        """Gateways silent past their bound are lost; lost ones due for a retry start again."""
        for gw in self.gws.values():
            if gw.state == UP and not self.paused and now - gw.last_in > self.silence:
                self._lose(gw, f"silent for {now - gw.last_in:.0f} s (frozen, or its network is)")
            elif gw.state == STARTING and now - gw.started > self.opt.ssh.connect_timeout + START_EXTRA:
                self._refuse(gw, "no hello in time")
            elif gw.state == LOST and gw.retry_at is not None and now >= gw.retry_at:
                gw.retry_at = None
                if self.verbose:
                    self.log(f"gateway {gw.name}: starting again")
                self._spawn(gw)

    def next_due(self):
        due = []
        for gw in self.gws.values():
            if gw.state == UP:
                due.append(gw.last_in + self.silence + 0.01)
            elif gw.state == STARTING:
                due.append(gw.started + self.opt.ssh.connect_timeout + START_EXTRA)
            elif gw.retry_at is not None:
                due.append(gw.retry_at)
        return min(due) if due else None

    def pause(self, pause):
        """Stop (or resume) reading the gateways: the reader of our output is behind."""
        if pause == self.paused:
            return
        self.paused = pause
        for gw in self.gws.values():
            if gw.child is None:
                continue
            fd = gw.child.fds[1]
            if pause:
                self.sel.unregister(fd)
            else:
                self.sel.register(fd, selectors.EVENT_READ, lambda g=gw: self._readable(g))
            gw.last_in = self.clock()  # a silence we caused is not the gateway's

    def stop(self):
        """Interrupted: every gateway ends its running jobs (TERM, KILL after its grace)."""
        for gw in self.gws.values():
            if gw.state == UP:
                self._write(gw, frames.encode("stop"))

    def abandon(self, idx, why):
        """A slot whose gateway did not report its end in time: as a worker that died."""
        name = self.owner.pop(idx, None)
        if name is not None:
            self.gws[name].running.discard(idx)
            self.gws[name].live.discard(idx)
        self.on_died(idx, f"on gateway {name}: {why}")

    def shutdown(self, grace=5.0, cleanup_wait=10.0):
        """Every gateway quits (its stdin closed: it ends its work and says ``bye``); each is read
        until its session ends, for up to ``grace`` seconds, then killed."""
        self.closing = True
        sel = selectors.DefaultSelector()
        for gw in self.gws.values():
            if gw.child is None:
                continue
            for fd in list(gw.child.fds.values()):
                try:
                    self.sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
            os.close(gw.child.fds.pop(0))  # its stdin's end is its quit
            gw.writing = False
            sel.register(gw.child.fds[1], selectors.EVENT_READ, gw)
        deadline = self.clock() + grace + (cleanup_wait if self.cleaning else 0.0)
        while sel.get_map() and self.clock() < deadline:
            for key, _ in sel.select(max(0.0, deadline - self.clock())):
                gw = key.data
                if gw.child is None or self._read_frames(gw) is False:
                    sel.unregister(key.fd)
        sel.close()
        for gw in self.gws.values():
            if gw.child is not None:
                if gw.child.wait(0.0 if self.clock() >= deadline else 0.5) is None:
                    try:
                        os.killpg(gw.child.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self._close(gw)

    def states(self):
        """{gateway: its state, why, and the nodes it drives now} for the result."""
        out = {}
        for name, gw in self.gws.items():
            out[name] = {"state": gw.state, "why": gw.why, "losses": gw.losses, "last_loss": gw.last_loss,
                         "info": gw.info, "cpu": gw.cpu,
                         "nodes": sorted(n for n in gw.nodes if self.plan[n][0] == name)}
        return out

    def route_of_nodes(self):
        """{node: the gateway that drives it now, or None}."""
        return {n: (None if g is UNREACHABLE else g) for n, g in self.current.items()}
