"""The root's side of gateways: each a pool of remote slots behind one ssh session.

A Gateway is that session (``ssh GW python3 -c BOOT``, gateway.py) and what the root knows of
it: its state (STARTING, UP, REFUSED, LOST), the root's slots with a worker there and those
with an attempt running there; its Session is the ssh process and its pipes, its FileCarrier
the files its jobs send and bring back. GatewayPool starts them, routes each node to one
(routes.Router), writes jobs down and turns the frames that come back into the events of
pool.py's contract, handed to the supervisor as a local worker's are. A gateway's session that ends, an error or malformed frame,
or a silence longer than its beats allow is the gateway LOST: each attempt running under it
ends LOST ("gateway gw1 lost: ..."), an attempt spent as for a node lost mid-job, and the
supervisor retires its nodes; the gateway is started again after a while (``retry``).
"""
import base64
import collections
import dataclasses
import os
import selectors
import time

from . import execslot, frames, gateway, hostlist, ssh, transfer
from .events import Deferred, Finished
from .proc import PIPE, Child, end_group
from .result import Ending
from .routes import Router
from .words import counted, noun

STARTING, UP, REFUSED, LOST = "starting", "up", "refused", "lost"
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


class Session:
    """A gateway's ssh process and its pipes: frames queued for its stdin (written as it takes
    them), whole lines read from its stdout, the last words of its stderr kept."""

    def __init__(self, argv, env, sel, on_line, on_end):
        """``on_line(line)``: a line it sent (FrameError: not a frame); ``on_end(exit status or
        None, why)``: its stdout ended (why None), or it failed (why says how: it does not take
        input, it sent what is not a frame)."""
        self.sel = sel
        self.on_line, self.on_end = on_line, on_end
        self.inbuf = b""
        self.outbuf = bytearray()
        self.queue = collections.deque()  # frames waiting for outbuf's room: bytes, or a file's frames
        self.err = b""
        self.writing = False  # its stdin is watched for room
        self.child = Child(argv, env, PIPE, PIPE, PIPE)
        for fd in self.child.fds.values():
            os.set_blocking(fd, False)
        self.watch(True)
        sel.register(self.child.fds[2], selectors.EVENT_READ, self._stderr)

    @property
    def open(self):
        return self.child is not None

    def watch(self, on):
        """Read its stdout (or stop: the reader of our output is behind)."""
        if on:
            self.sel.register(self.child.fds[1], selectors.EVENT_READ, self.readable)
        else:
            self.sel.unregister(self.child.fds[1])

    def said(self):
        """The last line its ssh wrote on stderr ("" if none)."""
        lines = self.err.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""

    # ---- writing -------------------------------------------------------
    def write(self, data):
        """Queue a frame (bytes) or the frames of a file (a generator of them)."""
        if self.child is None:
            if not isinstance(data, (bytes, bytearray)):
                data.close()
            return
        first = not self.outbuf and not self.queue
        self.queue.append(data)
        if first:
            self.flush()

    def flush(self):
        """Write what waits; what it does not take now waits for its stdin's room. OSError if its
        stdin is gone."""
        fd = self.child.fds.get(0) if self.child is not None else None
        if fd is None:
            return
        try:
            while self.outbuf or self.queue:
                while self.queue and len(self.outbuf) < OUT_HIGH:
                    item = self.queue[0]
                    if isinstance(item, (bytes, bytearray)):
                        self.outbuf += self.queue.popleft()
                    else:
                        try:
                            self.outbuf += next(item)
                        except StopIteration:
                            self.queue.popleft()
                del self.outbuf[:os.write(fd, self.outbuf[:1 << 20])]
        except BlockingIOError:
            pass
        if bool(self.outbuf) != self.writing:
            self.writing = bool(self.outbuf)
            if self.writing:
                self.sel.register(fd, selectors.EVENT_WRITE, self._room)
            else:
                self.sel.unregister(fd)

    def _room(self):
        try:
            self.flush()
        except OSError as e:
            self.on_end(None, f"its session does not take input ({e.strerror or e})")

    def end_input(self):
        """Close its stdin (what waits is dropped): the gateway's quit."""
        fd = self.child.fds.pop(0, None) if self.child is not None else None
        if fd is not None:
            if self.writing:
                self.sel.unregister(fd)
            self.writing = False
            os.close(fd)
        self._drop()

    def _drop(self):
        for item in self.queue:
            if not isinstance(item, (bytes, bytearray)):
                item.close()
        self.queue.clear()
        self.outbuf = bytearray()

    # ---- reading -------------------------------------------------------
    def _stderr(self):
        if self.child is None:
            return  # closed earlier in this same wake-up
        try:
            data = os.read(self.child.fds[2], 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(self.child.fds[2])
            return
        self.err = (self.err + data)[-STDERR_KEEP:]

    def readable(self):
        """Read and hand over the lines it sent; False once it ended (or was closed)."""
        try:
            return self._read()
        except frames.FrameError as e:
            self.on_end(None, f"it sent what is not a frame of clstr's: {e}")
            return False

    def _read(self):
        if self.child is None:
            return False
        try:
            data = os.read(self.child.fds[1], 1 << 18)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            data = b""
        if not data:
            self.on_end(self.close(), None)
            return False
        self.inbuf += data
        while self.child is not None:
            nl = self.inbuf.find(b"\n")
            if nl < 0:
                break
            line, self.inbuf = self.inbuf[:nl], self.inbuf[nl + 1:]
            self.on_line(line)
        if len(self.inbuf) > frames.MAX_FRAME:
            raise frames.FrameError("a line longer than any frame")
        return self.child is not None

    # ---- ending --------------------------------------------------------
    def close(self, kill=False):
        """End its ssh (``kill``: at once) and close its pipes: its exit status (None if killed)."""
        child, self.child = self.child, None
        self.writing = False
        self._drop()
        if child is None:
            return None
        if kill:
            end_group(child.pid, grace=0)
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
        return None if kill else code


class FileCarrier:
    """The files a gateway's jobs send (each down its session once, as ``put`` frames) and bring
    back (``got`` frames, written here beside their place before the attempt's Finished)."""

    def __init__(self, files_of, run, basefiles=(), where="the gateway"):
        """``files_of(slot)``: the transfer.JobFiles of the job the slot runs; ``run``: the run's
        token, in the names of the marks it makes (transfer.Mark); ``basefiles``: the run's
        (transfer.Send); ``where``: the gateway, as its failures name it."""
        self.files_of = files_of
        self.run = run
        self.basefiles = basefiles
        self.where = where
        self.puts = {}  # (path here, size, mtime) -> its put id on this session
        self.got = {}  # root slot -> {k: [fd, temporary path, why it failed]}: files coming back
        self.marks = {}  # root slot -> the transfer.Marks beside its attempt's files here, while it runs

    def marked(self, idx, files):
        """The names of marks made beside each of the attempt's sends, then returns, here: the nodes
        behind the gateway may see this machine's filesystem (transfer.Mark); removed at its end."""
        if files is None:
            return []
        marks = self.marks[idx] = [transfer.Mark(s.local, self.run) for s in files.sends] + [
            transfer.Mark(r.local, self.run) for r in files.returns]
        return [m.name.decode() for m in marks]

    def unmark(self, idx=None):
        """The slot's marks (None: every slot's) go: its attempt ended, or the session did."""
        for slot in ([idx] if idx is not None else list(self.marks)):
            for m in self.marks.pop(slot, ()):
                m.close()

    def put(self, local, stamp=None):
        """(put id, its frames to queue, or None if it went down already) of the file ``local``;
        the frames are read as the session takes them (a large file is never whole in memory).
        TransferError naming the file if it cannot be read here."""
        try:
            f = open(local, "rb")
            st = os.fstat(f.fileno())
        except OSError as e:
            raise transfer.file_error("send", local, ": " + transfer.oserror_words(e), there=True) from None
        try:
            transfer.check_stamp(local, st, stamp)
        except transfer.TransferError:
            f.close()
            raise
        key = (local, st.st_size, st.st_mtime_ns)
        if key in self.puts:
            f.close()
            return self.puts[key], None
        i = self.puts[key] = len(self.puts)
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

    def got_piece(self, idx, frame):
        """A piece of a file the slot's attempt brought back: written beside its place here."""
        k, mode = frames.field(frame, "k", int), frames.field(frame, "mode", int)
        data, more = frames.piece(frame)
        got = self.got.setdefault(idx, {})
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
                entry[2] = f"return: {self.returns_of(idx)[k].local}: {transfer.here_error(e)}"
                os.close(entry[0])
                transfer.discard(entry[1])
                entry[0] = entry[1] = None
        if not more and entry[0] is not None:
            os.close(entry[0])
            entry[0] = -1

    def returns_of(self, idx):
        jf = self.files_of(idx)
        return jf.returns if jf else ()

    def named(self, idx, file):
        """The words of an events.FileNamed from the gateway, its file by the name it has here."""
        jf = self.files_of(idx)
        among = {"send": jf.sends if jf else (), "return": jf.returns if jf else (), "basefile": self.basefiles}
        files = among[file.side]
        name = files[file.k].local if file.k < len(files) else f"its file {file.k}"
        return file.render(name, self.where)

    def finished(self, idx, ev):
        """The slot's Finished with the files it brought back, as a local worker's has them, and
        the file its reason names by this machine's name for it."""
        if ev.file is not None:
            ev = dataclasses.replace(ev, reason=self.named(idx, ev.file))
        self.unmark(idx)
        got = self.got.pop(idx, {})
        if not got:
            return ev
        returns = self.returns_of(idx)
        failed = [e[2] for e in got.values() if e[2]]
        if failed or len(got) != len(returns) or ev.ending is not Ending.OK:
            self._discard(got)
            if failed and ev.ending is Ending.OK:
                return dataclasses.replace(ev, exit=255, ending=Ending.FILE_FAILED, reason=failed[0])
            return ev
        return dataclasses.replace(ev, returned=tuple((got[k][1], r.local) for k, r in enumerate(returns)))

    def drop(self, idx=None):
        """Files coming back for the slot (None: every slot) are not placed: removed here."""
        self.unmark(idx)
        for slot in ([idx] if idx is not None else list(self.got)):
            self._discard(self.got.pop(slot, {}))

    @staticmethod
    def _discard(got):
        for fd, tmp, _ in got.values():
            if fd is not None and fd >= 0:
                os.close(fd)
            if tmp:
                transfer.discard(tmp)


class Gateway:
    """One gateway: its session, its state and what runs there."""

    def __init__(self, name, nodes):
        self.name = name
        self.sent_zip = False  # the zipapp went down its session (once at most)
        self.nodes = nodes  # the run's nodes it reaches
        self.state = STARTING
        self.why = None  # why it was refused or lost
        self.session = None
        self.files = None  # its FileCarrier, for a session
        self.last_in = 0.0
        self.started = 0.0
        self.retry_at = None
        self.losses = 0
        self.last_loss = None  # why it was last lost (it may be up again)
        self.cpu = None  # CPU seconds its sessions said they used (their bye), summed
        self.running = set()  # root slots with an attempt running there
        self.info = ""

    def write(self, data):
        if self.session is not None and self.state in (STARTING, UP):
            self.session.write(data)
        elif not isinstance(data, (bytes, bytearray)):
            data.close()


def _its_nodes(nodes):
    """"its node" or "its 3 nodes"."""
    return "its node" if len(nodes) == 1 else f"its {counted(len(nodes), 'node')}"


class GatewayPool:
    """The run's gateways (see the module docstring)."""

    def __init__(self, routes, nodes, opt, env, sel, callbacks, log, clock=time.monotonic, python="python3",
                 fallback="direct", verbose=False, retry=30.0):
        """``routes``: a routes.Routes; ``nodes``: the run's node names; ``callbacks``: (on_events(slot,
        events), on_died(slot, why), on_lost(gateway name), seq_of(slot): the job a slot runs);
        ``fallback``: where a node goes whose gateways are all down, ``direct`` or ``none``."""
        plan = routes.plan(nodes)
        self.gws = {gw: Gateway(gw, [n for n in nodes if n in plan and gw in plan[n]]) for gw in routes.order}
        self.router = Router(plan, lambda gw: self.gws[gw].state == UP, fallback)
        self.opt = opt
        self.env = env
        self.sel = sel
        self.on_events, self.on_died, self.on_lost, self.seq_of = callbacks
        self.log = log
        self.clock = clock
        self.python = python
        self.verbose = verbose
        self.retry = retry
        self.owner = {}  # root slot -> the gateway its live worker is on
        self.paused = False
        self.silence = max(3 * frames.BEAT, opt.ssh.alive_interval * opt.ssh.alive_count)
        self._zip = None
        self._base_marks = None  # transfer.Marks beside the basefiles here, for the run (see Mark)
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
        for node in self.router.plan:
            self.router.route(node)

    def _spawn(self, gw):
        gw.state, gw.why, gw.running = STARTING, None, set()
        gw.started = gw.last_in = self.clock()
        gw.files = FileCarrier(lambda idx: (self.opt.job_files or {}).get(self.seq_of(idx)), self.opt.ssh.mark,
                               self.opt.files.basefiles if self.opt.files else (), f"gateway {gw.name}")
        argv = ssh.job_argv(self._base, gw.name, gateway.bootstrap(self.python), None)
        try:
            gw.session = Session(argv, self.env, self.sel, lambda line: self._frame(gw, line),
                                 lambda code, why: self._ended(gw, code, why))
        except OSError as e:
            gw.session = None
            self._refuse(gw, f"its ssh could not be started ({e.strerror or e})")

    # ---- routing -------------------------------------------------------
    def route(self, node):
        """Where the node's attempts go: a gateway's name, None (the root drives it) or UNREACHABLE."""
        return self.router.route(node)

    def reroute(self, node):
        return self.router.reroute(node)

    def unreachable_why(self, node):
        downs = [f"{g} {self.gws[g].state}" for g in self.router.plan[node]]
        return "no gateway reaches it (" + ", ".join(downs) + ")"

    # ---- slots ---------------------------------------------------------
    def send(self, name, idx, node, group, job):
        """Start the attempt on the gateway; its files to send go first (each once a gateway).
        TransferError (nothing sent) if one of them cannot be read here."""
        gw = self.gws[name]
        puts = [gw.files.put(s.local) for s in job.files.sends] if job.files is not None else []
        for _, pieces in puts:
            if pieces is not None:
                gw.write(pieces)
        marks = gw.files.marked(idx, job.files)
        old = self.owner.get(idx)
        if old is not None and old != name:
            self.release(idx)
        gw.running.add(idx)
        self.owner[idx] = name
        gw.write(frames.job_out(idx, node, group, job, [i for i, _ in puts], marks))

    def running(self, idx):
        name = self.owner.get(idx)
        return name is not None and idx in self.gws[name].running

    def limit(self, idx, seconds):
        name = self.owner.get(idx)
        if name is not None:
            self.gws[name].write(frames.encode("limit", slot=idx, seconds=seconds))

    def release(self, idx):
        """The slot's worker on its gateway goes (it is idle)."""
        name = self.owner.pop(idx, None)
        if name is not None and self.gws[name].state == UP and idx not in self.gws[name].running:
            self.gws[name].write(frames.encode("release", slot=idx))

    def live_slots(self):
        return set(self.owner)

    def cleanup(self, name, groups, line):
        """--cleanup at the end: the gateway runs ``line`` on these nodes (their connection groups)."""
        gw = self.gws[name]
        if gw.state == UP:
            self.cleaning = True
            gw.write(frames.encode("cleanup", nodes=[list(g) for g in groups], line=line))

    # ---- frames --------------------------------------------------------
    def _frame(self, gw, line):
        gw.last_in = self.clock()
        if gw.state == STARTING:
            self._handshake(gw, frames.decode(line, ("need", "hello")))
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
            gw.files.got_piece(idx, frame)
        elif t == "died":
            gw.files.drop(idx)
            gw.running.discard(idx)
            self.owner.pop(idx, None)
            why = frames.field(frame, "why", str, optional=True) or f"exit {frames.field(frame, 'exit', int)}"
            self.on_died(idx, f"on gateway {gw.name}: {why}")
        else:
            self._events(gw, idx, [frames.event_in(d, idx) for d in frames.field(frame, "e", list)])

    def _events(self, gw, idx, events):
        running = self.seq_of(idx)
        for ev in events:
            if getattr(ev, "seq", running) != running:
                raise frames.FrameError(f"an event of job {ev.seq} on slot {idx}, which runs job {running}")
        if any(isinstance(ev, (Finished, Deferred)) for ev in events):
            gw.running.discard(idx)
            events = [gw.files.finished(idx, ev) if isinstance(ev, Finished) else ev for ev in events]
        self.on_events(idx, events)

    def _handshake(self, gw, frame):
        """The gateway asks for the zipapp, or says hello: judged, then given the run's setup."""
        if frame["t"] == "need":
            if gw.sent_zip:  # one copy a gateway: a second ask is refused, not queued again
                self._fail(gw, "it asked for clstr's package again after it was sent")
                return
            if self._zip is None:
                self._zip = gateway.zipapp()
            gw.sent_zip = True
            gw.write(b"%d\n" % len(self._zip) + self._zip)
            return
        why = judge_hello(frame, gateway.__version__)
        if why:
            self._refuse(gw, why)
            return
        gw.state = UP
        gw.info = (f"clstr {frame['clstr']} " + ("sent as a zipapp" if frame.get("zipapp") else "installed")
                   + f", python {frame['python']}")
        if self.verbose:
            self.log(f"gateway {gw.name}: up in {self.clock() - gw.started:.2f} s ({gw.info}), "
                     f"driving {counted(len(gw.nodes), 'node')}")
        files = self.opt.files
        try:
            bases = [gw.files.put(b.local, b.stamp) for b in files.basefiles] if files is not None else []
        except transfer.TransferError as e:
            self._fail(gw, f"a basefile cannot be sent: {e}")
            return
        if self._base_marks is None and files is not None:
            self._base_marks = [transfer.Mark(b.local, self.opt.ssh.mark) for b in files.basefiles]
        marks = [m.name.decode() for m in self._base_marks or ()]
        gw.write(frames.setup_out(self.opt.ssh, self.opt.timeout, self.opt.idle_timeout, self.nslots,
                                  self.opt.multiplex, self.exec_slots,
                                  frames.files_out(files, [i for i, _ in bases], marks), gw.name))
        for _, pieces in bases:
            if pieces is not None:
                gw.write(pieces)

    # ---- losing it -----------------------------------------------------
    def _ended(self, gw, code, why=None):
        """The gateway's session ended (``code``: its ssh's exit status), or does not take input (``why``)."""
        if why is not None:
            self._fail(gw, why)
            return
        tail = gw.session.said() if gw.session is not None else ""
        if gw.state == STARTING:
            if code == 127 or "not found" in tail:
                self._refuse(gw, f"no {self.python.split()[0]} there" + (f" ({tail})" if tail else ""))
            elif code == 255:
                self._refuse(gw, ssh.classify(gw.session.err)[0] or "ssh exit 255" + (f": {tail}" if tail else ""))
            else:
                self._refuse(gw, f"it exited with status {code}" + (f": {tail}" if tail else ""))
        elif gw.state == UP and not self.closing:
            what = "its session ended" if code is None else f"its ssh exited {code}"
            self._lose(gw, what + (f": {tail}" if tail else ""))

    def _fail(self, gw, why):
        if gw.session is not None:
            gw.session.close(kill=True)
        if gw.state == STARTING:
            self._refuse(gw, why)
        else:
            self._lose(gw, why)

    def _refuse(self, gw, why):
        if gw.session is not None:
            gw.session.close(kill=True)
        if gw.losses:  # lost earlier and not back yet: tried again later
            gw.state, gw.why, gw.retry_at = LOST, f"{gw.last_loss}; not back: {why}", self.clock() + self.retry
            if self.verbose:
                self.log(f"gateway {gw.name}: not back: {why}")
            return
        gw.state, gw.why, gw.retry_at = REFUSED, why, None
        self.log(f"gateway {gw.name} refused: {why}; " + self._whereto(gw))

    def _whereto(self, gw):
        if not gw.nodes:
            return "it drives no node of this run"
        plan, direct = self.router.plan, self.router.fallback == "direct"
        others = sorted({g for n in gw.nodes for g in plan[n] if g != gw.name and self.gws[g].state in (UP, STARTING)})
        where = (f"through {', '.join(others)}" if others else "") + (" or " if others and direct else "") + (
            "directly" if direct else "")
        if not where:
            return f"{_its_nodes(gw.nodes)} {noun(len(gw.nodes), 'waits', 'wait')} for it (--gateway-fallback none)"
        return f"{_its_nodes(gw.nodes)} ({hostlist.fold(gw.nodes)}) {noun(len(gw.nodes), 'is', 'are')} driven {where}"

    def _lose(self, gw, why):
        """The gateway is lost mid-run: its running attempts end LOST, its nodes go (on_lost)."""
        if gw.state == LOST:
            return
        if gw.session is not None:
            gw.session.close(kill=True)
        gw.state, gw.why, gw.last_loss = LOST, why, why
        gw.losses += 1
        gw.retry_at = self.clock() + self.retry
        running, gw.running = sorted(gw.running), set()
        gw.files.drop()
        for idx in [i for i, g in self.owner.items() if g == gw.name]:
            del self.owner[idx]
        self.log(f"gateway {gw.name} lost: {why}; " + (
            f"{counted(len(running), 'running job')} {noun(len(running), 'goes', 'go')} back, " if running
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
            if gw.session is not None and gw.session.open:
                gw.session.watch(not pause)
                gw.last_in = self.clock()  # a silence we caused is not the gateway's

    def stop(self):
        """Interrupted: every gateway ends its running jobs (TERM, KILL after its grace)."""
        for gw in self.gws.values():
            if gw.state == UP:
                gw.write(frames.encode("stop"))

    def abandon(self, idx, why):
        """A slot whose gateway did not report its end in time: as a worker that died."""
        name = self.owner.pop(idx, None)
        if name is not None:
            self.gws[name].running.discard(idx)
            self.gws[name].files.drop(idx)
        self.on_died(idx, f"on gateway {name}: {why}")

    def shutdown(self, grace=5.0, cleanup_wait=10.0):
        """Every gateway quits (its stdin closed: it ends its work and says ``bye``); each is read
        until its session ends, for up to ``grace`` seconds (more after a cleanup), then killed."""
        self.closing = True
        sel = selectors.DefaultSelector()
        live = [gw for gw in self.gws.values() if gw.session is not None and gw.session.open]
        for gw in live:
            if not self.paused:
                gw.session.watch(False)
            gw.session.end_input()
            sel.register(gw.session.child.fds[1], selectors.EVENT_READ, gw)
        deadline = self.clock() + grace + (cleanup_wait if self.cleaning else 0.0)
        while sel.get_map() and self.clock() < deadline:
            for key, _ in sel.select(max(0.0, deadline - self.clock())):
                gw = key.data
                if not gw.session.readable():
                    sel.unregister(key.fd)
        sel.close()
        for gw in live:
            if gw.session.open:
                gw.session.close(kill=True)
            if gw.files is not None:
                gw.files.drop()
        for m in self._base_marks or ():
            m.close()

    def states(self):
        """{gateway: its state, why, and the nodes it drives first} for the result."""
        plan = self.router.plan
        return {name: {"state": gw.state, "why": gw.why, "losses": gw.losses, "last_loss": gw.last_loss,
                       "info": gw.info, "cpu": gw.cpu, "nodes": sorted(n for n in gw.nodes if plan[n][0] == name)}
                for name, gw in self.gws.items()}

    def route_of_nodes(self):
        """{node: the gateway that drives it now, or None}."""
        return self.router.drivers()
