"""A clstr serving on a gateway: a pool of remote slots, spoken to in frames (frames.py).

The root starts it over one ssh session (``bootstrap`` is the command): a few lines of Python
find clstr of the root's version there, or ask for the root's own as a zipapp, read it from
the session, import everything from it and remove it at once (nothing is left on the gateway
even if it is killed later). Then ``serve`` says hello and keeps the slot pool contract of
pool.py for the root's slots that it is given: it runs them with clstr's own workers (so
marks, exact exit statuses, timeouts and pipelined sessions are the same as for a direct slot)
and sends back their events whole, in order. It decides nothing: the root's scheduler does.

Its stdin ending (the root quit, was killed, or lost the session), a ``quit`` frame, SIGTERM or
SIGHUP: it ends its running jobs as clstr does (TERM, then KILL after a grace, on the nodes
through their sessions' remote cleanup), its workers and masters, and exits.
"""
import base64
import dataclasses
import importlib.util
import io
import marshal
import multiprocessing
import os
import pkgutil
import resource
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
import zipfile

from . import __version__, controldir, frames, reaper, slots
from . import ssh, transfer, transports
from .events import Deferred, FileNamed, Finished
from .execslot import ExecSlots
from .options import RunOptions
from .pool import WorkerPool
from .result import Ending
from .proc import spawn_error
from .worker import WorkerSpec, worker_main

STOP_GRACE = 2.0  # TERM to KILL of the running ssh when told to stop
REPORT_GRACE = 1.0  # after the KILL: how long a worker gets to report before it is killed too


# ---- what the root sends ---------------------------------------------------
BOOT = r"""
import json,os,sys
V,P=%r,%d
def say(**d):
    os.write(1,(json.dumps(d)+"\n").encode())
def read(n):
    b=b""
    while len(b)<n:
        c=os.read(0,n-len(b))
        if not c: sys.exit(0)
        b+=c
    return b
if sys.version_info<(3,9):
    say(t="hello",proto=P,clstr=None,python=sys.version.split()[0],pid=os.getpid());sys.exit(3)
try:
    import clstr;ok=clstr.__version__==V
except Exception:
    ok=False
if not ok:
    for m in [m for m in sys.modules if m=="clstr" or m.startswith("clstr.")]:del sys.modules[m]
    say(t="need");n=b""
    while not n.endswith(b"\n"):n+=read(1)
    import tempfile;d=tempfile.mkdtemp(prefix="clstr-gw-");p=os.path.join(d,"clstr.pyz")
    try:
        with open(p,"wb") as f:f.write(read(int(n)))
        sys.path.insert(0,p);import clstr.gateway as g;g.preload()
    finally:
        os.unlink(p);os.rmdir(d)
else:
    import clstr.gateway as g
g.serve(not ok)
"""


def bootstrap(python="python3"):
    """The remote command that starts a gateway, run by the login shell as a node's job is: one
    line of letters, digits and ``'"();=.+/`` (the boot as base64), which sh, bash, zsh, csh, tcsh
    and fish all take the same way."""
    code = base64.b64encode((BOOT % (__version__, frames.PROTOCOL)).encode()).decode()
    return f"exec {python} -c 'import base64;exec(base64.b64decode(\"{code}\"))'"


def zipapp():
    """This clstr as a zip of its package, to run from on a gateway: the sources, and beside each
    its bytecode for this Python (unchecked: a gateway of the same Python version imports it
    without compiling; another ignores it by its magic number and compiles the source)."""
    buf = io.BytesIO()
    here = os.path.dirname(os.path.abspath(__file__))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for root, dirs, files in os.walk(here):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in sorted(files):
                if not name.endswith((".py", ".sh")):
                    continue
                path = os.path.join(root, name)
                inside = os.path.join("clstr", os.path.relpath(path, here))
                z.write(path, inside)
                if name.endswith(".py"):
                    z.writestr(inside + "c", _bytecode(path))
    return buf.getvalue()


def _bytecode(path):
    """The unchecked-hash .pyc of a source: from this Python's own cache when it is current (no
    compiling), else compiled now."""
    st = os.stat(path)
    try:
        with open(importlib.util.cache_from_source(path), "rb") as f:
            cached = f.read()
    except (OSError, NotImplementedError):
        cached = b""
    flags = int.from_bytes(cached[4:8], "little") if len(cached) >= 16 else -1
    current = (cached[:4] == importlib.util.MAGIC_NUMBER and flags == 0
               and int.from_bytes(cached[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
               and int.from_bytes(cached[12:16], "little") == st.st_size & 0xFFFFFFFF)
    if current:
        body = cached[16:]
    else:
        with open(path, "rb") as f:
            body = marshal.dumps(compile(f.read(), path, "exec", dont_inherit=True))
    return importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + bytes(8) + body


def preload():
    """Import every module of the package now: the zipapp they came from is removed next.

    Modules that need what the gateway lacks (pyyaml for profiles) are not the gateway's: left out.
    """
    import clstr
    for info in pkgutil.iter_modules(clstr.__path__, "clstr."):
        if info.name == "clstr.__main__":
            continue  # the command line's entry: importing it runs it
        try:
            __import__(info.name)
        except ImportError:
            pass
    from . import ssh
    for name in ("files.sh", "loop.sh", "reader.sh", "watch.sh"):
        ssh.remote_program(name)  # the shell programs the workers send to nodes, read now


# ---- serving ---------------------------------------------------------------
class GatewaySlot:
    """A root slot as the gateway's kinds of slot see it (slots.py): its node, its connection
    group, and ``busy`` (the job it runs, or None) from the server's running set."""

    __slots__ = ("running", "index", "node", "group")

    def __init__(self, running, index):
        self.running, self.index, self.node, self.group = running, index, None, None

    @property
    def busy(self):
        return self.index if self.index in self.running else None


class Server:
    """The gateway's loop: frames in from the root, its slots' events out."""

    def __init__(self, rfd=0, wfd=1, clock=time.monotonic):
        self.rfd, self.wfd = rfd, wfd
        self.clock = clock
        self.inbuf = b""
        self.sel = selectors.DefaultSelector()
        self.pool = None
        self.files = None  # transfer.Files of the run, with files
        self.fdir = None  # where the root's files and those brought back wait here
        self.putting = {}  # put id -> its open file while pieces come
        self.unstored = {}  # put id -> (what, there) of why the file could not be kept here (events.FileNamed)
        self.job_files = {}  # root slot -> the transfer.JobFiles of its attempt here
        self.base_ids = []  # the put ids of the run's basefiles
        self.kinds = []  # its kinds of slot (slots.py), as the root's: exec slots where the root said so, forked
        self.slots = []  # root slot -> a GatewaySlot: its node, group and whether it runs
        self.control = None
        self.cfg = None
        self.nodes = {}  # root slot -> its node
        self.groups = {}  # root slot -> the connection group its live worker was started for
        self.running = set()  # slots with an attempt the root has no end of yet
        self.stop_at = None  # told to stop: when TERM turns to KILL
        self.quitting = False
        self.out_gone = False
        self.last_out = 0.0
        self.run_id = os.urandom(16).hex()
        self.env = dict(os.environ, **{reaper.MARKER: self.run_id})

    # ---- writing -------------------------------------------------------
    def send(self, t, **fields):
        """Write one frame (blocking: the root reads every gateway as it reads its own workers);
        once the root's end is gone, nothing more is written and the gateway ends its work."""
        if self.out_gone:
            return
        view = memoryview(frames.encode(t, **fields))
        while view:
            try:
                view = view[os.write(self.wfd, view):]
            except InterruptedError:
                continue
            except OSError:
                self.out_gone = True
                self.quit()
                return
        self.last_out = self.clock()

    # ---- the setup -----------------------------------------------------
    def setup(self, frame):
        cfg, self.timeout, self.idle_timeout, nslots, multiplex, exec_slots = frames.setup_in(frame)
        self.cfg = dataclasses.replace(cfg, leading=ssh.kept_stdin(cfg.command))  # what the ssh here needs
        files = frames.field(frame, "files", dict, optional=True)
        if files is not None:
            workdir, cleanup, fresh, basefiles, only, preserve = frames.files_in(files)
            self.fdir = tempfile.mkdtemp(prefix="clstr-gwfiles-")
            os.mkdir(os.path.join(self.fdir, "out"))
            self.files = transfer.Files(workdir, cleanup, tuple(transfer.Send(self._put_path(i), r, mark=m)
                                                                for i, r, m in basefiles), fresh, only,
                                          preserve=preserve)
            self.base_ids = [i for i, _, _ in basefiles]
        if multiplex:
            self.control = controldir.ControlPaths([], nslots)
        ctx = multiprocessing.get_context("fork")
        self.pool = WorkerPool(ctx, nslots, worker_main, self._spec, self.sel,
                               handlers=(self.on_message, self.on_death, self.pool_reaped))
        self.pool.raise_fd_limit()
        self.slots = [GatewaySlot(self.running, i) for i in range(nslots)]
        self.kinds = [slots.Forked(self.pool, self.slots, self.groups, None, self._left_out, self.on_death,
                                   self.clock)]
        if exec_slots:
            # the run's options as the gateway has them from the setup frame, for its exec slots
            limits = RunOptions(ssh=self.cfg, timeout=self.timeout, idle_timeout=self.idle_timeout,
                                multiplex=multiplex)
            execs = ExecSlots(limits, self.env, self.sel, self.pool.board, self.forward,
                              lambda: self.stop_at is not None)
            self.kinds.insert(0, slots.Exec(execs, self.slots, None, self._left_out))

    def _spec(self, idx):
        node, group = self.nodes[idx]
        self.groups[idx] = group
        return WorkerSpec(idx, node, self.cfg, self.env, transports.control_path(self.control, self.cfg, node, group),
                          self.timeout, self.idle_timeout, self.files)

    # ---- frames from the root -----------------------------------------
    def on_input(self):
        try:
            data = os.read(self.rfd, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(self.rfd)
            self.quit()
            return
        self.inbuf += data
        while b"\n" in self.inbuf:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            self.on_frame(frames.decode(line))
        if len(self.inbuf) > frames.MAX_FRAME:
            raise frames.FrameError("a line longer than any frame")

    def on_frame(self, frame):
        t = frame["t"]
        if t == "setup" and self.pool is None:
            self.setup(frame)
        elif self.pool is None:
            raise frames.FrameError(f"a {t!r} frame before the setup")
        elif t == "job":
            self.job(*frames.job_in(frame))
        elif t == "put":
            self.put(frame)
        elif t == "cleanup":
            self.cleanup(frame)
        elif t == "limit":
            idx = frames.field(frame, "slot", int)
            seconds = frames.field(frame, "seconds", float)
            kind = next((k for k in self.kinds if k.runs(idx)), None)
            if kind is not None:
                kind.limit(idx, seconds)
        elif t == "release":
            idx = frames.field(frame, "slot", int)
            if self.pool.live(idx) and idx not in self.running:
                self.pool.release(idx)
        elif t == "stop":
            self.stop()
        elif t == "quit":
            self.quit()
        else:
            raise frames.FrameError(f"unexpected {t!r} frame")

    # ---- files: pieces from the root, kept until the run ends ------------
    def _put_path(self, i):
        return os.path.join(self.fdir, f"in-{i}")

    def put(self, frame):
        """A piece of a file the root sends (its jobs send it on to their nodes)."""
        if self.fdir is None:
            raise frames.FrameError("a put frame in a run without files")
        # its ``name`` (the root's path) is the root's to say: a failure names the file by its place
        i, mode = frames.field(frame, "id", int), frames.field(frame, "mode", int)
        data, more = frames.piece(frame)
        path = self._put_path(i)
        if i in self.unstored:
            return  # the rest of a file that could not be kept here
        fd = self.putting.get(i)
        try:
            if fd is None:
                fd = self.putting[i] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            transfer.write_all(fd, data)
        except OSError as e:  # this machine's failure (its temporary directory is full): that file's
            self.putting.pop(i, None)  # attempts fail, naming it; the gateway goes on
            if fd is not None:
                os.close(fd)
            transfer.discard(path)
            self.unstored[i] = (": " + transfer.oserror_words(e), True)
            return
        if not more:
            os.fchmod(self.putting.pop(i), mode & 0o777)
            os.close(fd)
            error = frames.field(frame, "error", str, optional=True)
            if error:  # the root could not read it whole: a job that sends it fails, naming why
                os.unlink(path)
                self.unstored[i] = (": " + error, False)

    def _files_of(self, idx, job, files):
        """The job's transfer.JobFiles here: its sends from the root's puts, its returns to this
        gateway's files, sent up to the root before its Finished."""
        sends, returns, marks = files
        outs = [os.path.join(self.fdir, "out", f"{idx}-{job.seq}-{k}") for k in range(len(returns))]
        # the marks are the root's: a node that sees the root's filesystem finds them there
        return transfer.JobFiles(tuple(transfer.Send(self._put_path(i), r, mark=m) for (i, r), m in zip(sends, marks)),
                                 tuple(transfer.Return(r, out, m)
                                       for r, out, m in zip(returns, outs, marks[len(sends):])))

    def _brought_back(self, idx, ev):
        """Send up each file the attempt brought back, piece by piece; the Finished without them."""
        for k, (tmp, _) in enumerate(ev.returned):
            try:
                with open(tmp, "rb") as f:
                    mode = os.fstat(f.fileno()).st_mode & 0o777
                    while True:
                        data = f.read(transfer.CHUNK)
                        more = len(data) == transfer.CHUNK
                        self.send("got", slot=idx, k=k, mode=mode, data=base64.b64encode(data).decode(), more=more)
                        if not more:
                            break
            finally:
                transfer.discard(tmp)
        return dataclasses.replace(ev, returned=(), file=self._placed(idx, ev.file))

    def _placed(self, idx, file):
        """The attempt's events.FileNamed by its place among the slot's files, not by its path
        here: the root names it (None where it names no file of the job's)."""
        if file is None or file.path is None:
            return file
        jf = self.job_files.get(idx)
        among = {"send": jf.sends if jf else (), "return": jf.returns if jf else (),
                 "basefile": self.files.basefiles if self.files else ()}[file.side]
        for k, f in enumerate(among):
            if f.local == file.path:
                return dataclasses.replace(file, path=None, k=k)
        return None

    def cleanup(self, frame):
        """--cleanup at the run's end: ``line`` on the nodes named (transfer.clean_nodes)."""
        line = frames.field(frame, "line", str)
        groups = frames.field(frame, "nodes", list)
        if not all(isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], int)
                   for pair in groups):
            raise frames.FrameError("cleanup frame: nodes are not [[node, n], ...]")
        transfer.clean_nodes(self.cfg, [tuple(pair) for pair in groups], line,
                             self.control.path if self.control else lambda group: None, self.env, self.clock)
        self.send("cleaned")

    def job(self, idx, node, group, job, files=None):
        if not 0 <= idx < len(self.pool.slots):
            raise frames.FrameError(f"job frame: no slot {idx}")
        if files is not None or job.basefiles:
            if self.files is None:
                raise frames.FrameError("a job with files in a run without files")
            failed = [FileNamed("send", *self.unstored[i], k=k)
                      for k, (i, _) in enumerate(files[0] if files is not None else ()) if i in self.unstored]
            failed += [FileNamed("basefile", *self.unstored[i], k=k)
                       for k, i in enumerate(self.base_ids) if i in self.unstored]
            if failed and not (self.quitting or self.stop_at is not None):
                why = failed[0].render(f"file {failed[0].k}", "the gateway")  # the root names the file
                self.send("ev", slot=idx, e=[frames.event_out(Finished(idx, job.seq, 255, time.time(), 0.0,
                                                                       Ending.FILE_FAILED, why, file=failed[0]))])
                return
            if files is not None:
                job = dataclasses.replace(job, files=self._files_of(idx, job, files))
        self.job_files[idx] = job.files
        if self.quitting or self.stop_at is not None:
            return  # the root told us to stop: it counts what it sent since as not run
        self.running.add(idx)
        self.nodes[idx] = (node, group)
        self.slots[idx].node, self.slots[idx].group = node, group
        for kind in self.kinds:
            kind.ended(idx, True)  # a worker started for another connection group goes: its slot moved
        for kind in self.kinds:
            if kind.take(idx, job) != slots.NOT_MINE:
                break

    def _left_out(self, idx, job, what, e):
        """The slot's attempt could not start here (no process or descriptor left): the root hears
        of it as of a death, and its job goes back."""
        self.running.discard(idx)
        self.send("died", slot=idx, exit=-1, why=f"{what} ({spawn_error(e)})")

    # ---- events from the workers --------------------------------------
    def on_message(self, idx):
        self.pool.deliver(idx, self.forward, self.on_death)

    def forward(self, idx, message):
        evs = message if isinstance(message, list) else [message]
        for n, ev in enumerate(evs):
            if isinstance(ev, (Finished, Deferred)):
                self.running.discard(idx)
            if isinstance(ev, Finished) and (ev.returned or ev.file):
                evs[n] = self._brought_back(idx, ev)
        self.send("ev", slot=idx, e=[frames.event_out(ev) for ev in evs])

    def on_death(self, idx):
        if not self.pool.live(idx):
            return
        messages, code = self.pool.died(idx)
        for m in messages:
            self.forward(idx, m)
        if idx in self.running:
            self.running.discard(idx)
            self.send("died", slot=idx, exit=code if isinstance(code, int) else -1, why=None)

    def pool_reaped(self, proc):
        self.pool.reaped(proc)

    # ---- ending --------------------------------------------------------
    def stop(self):
        """End every running job: TERM their ssh now, KILL after STOP_GRACE (``tick``)."""
        if self.stop_at is None:
            self.stop_at = self.clock() + STOP_GRACE
            self._signal_running(signal.SIGTERM)

    def _signal_running(self, sig):
        if self.pool is None:
            return
        for idx in self.running:
            pid = self.pool.board.pid[idx]
            if pid:
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def quit(self):
        self.quitting = True
        self.stop()

    def tick(self):
        now = self.clock()
        if self.stop_at is not None and now >= self.stop_at:
            self._signal_running(signal.SIGKILL)
            if now >= self.stop_at + REPORT_GRACE:
                for idx in list(self.running):
                    for kind in self.kinds:
                        if kind.runs(idx):
                            kind.overdue(idx, now - self.stop_at)
        if now - self.last_out >= frames.BEAT:
            self.send("beat")

    def done(self):
        return self.quitting and not self.running

    def loop(self):
        os.set_blocking(self.rfd, False)
        self.sel.register(self.rfd, selectors.EVENT_READ, self.on_input)
        while not self.done():
            waits = [frames.BEAT - (self.clock() - self.last_out)]
            if self.stop_at is not None:
                waits.append(self.stop_at - self.clock())
            for kind in self.kinds:
                due = kind.next_due()
                if due is not None:
                    waits.append(due - self.clock())
            for key, _ in self.sel.select(max(0.0, min(waits))):
                key.data()
            for kind in self.kinds:
                kind.tick(self.clock())
            self.tick()

    def shutdown(self):
        for kind in self.kinds:
            kind.shutdown()
        if self.control is not None:
            controldir.end_masters(self.control.dir)  # with no psutil on the gateway, this is what ends them
        try:
            reaper.reap(self.run_id, descendants_only=True)
        except ImportError:
            pass  # no psutil here: the pool ended its workers, the masters were ended above
        if self.control is not None:
            self.control.remove()
        for fd in self.putting.values():
            os.close(fd)
        if self.fdir is not None:
            shutil.rmtree(self.fdir, ignore_errors=True)


def serve(from_zipapp=False):
    """The gateway's main: hello, then frames until the root quits or goes; exit status 0, or 1
    after a frame it could not take (said in an ``error`` frame first)."""
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    server = Server()

    def on_signal(signum, frame):
        server.quit()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    server.sel.register(wake_r, selectors.EVENT_READ, lambda: wake_r.recv(4096))
    reaper.subreaper(True)
    code = 0
    try:
        server.send("hello", proto=frames.PROTOCOL, clstr=__version__, python=sys.version.split()[0],
                    pid=os.getpid(), zipapp=from_zipapp)
        server.loop()
    except frames.FrameError as e:
        code = 1
        try:
            server.send("error", text=str(e))
        except OSError:
            pass
    except OSError:
        code = 1  # the root's end of the session is gone
    finally:
        server.quit()
        server.shutdown()
    # what the gateway's work cost it, for the root to report (its own CPU and its children's)
    use = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    try:
        server.send("bye", cpu=round(sum(u.ru_utime + u.ru_stime for u in use), 3),
                    rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except OSError:
        pass
    os._exit(code)
