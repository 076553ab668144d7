"""Pure: the frames between a root clstr and a gateway serving it, typed and versioned.

A frame is one line of JSON (UTF-8, no line break inside): an object whose ``t`` names its type.
Nothing else crosses machines: never pickle, whose protocol and classes differ between Python
and clstr versions (ClusterShell's tree mode broke that way). ``PROTOCOL`` is the version of
this set of frames; the gateway says its own in its first frame and the root refuses a gateway
whose version differs.

Gateway -> root:
  ``need``  {}                           no clstr of the root's version there: send the zipapp
  ``hello`` {proto, clstr, python, pid}  ready (the first frame, once clstr runs there)
  ``ev``    {slot, e: [event...]}        what a slot's worker sent, in order (events.py, encoded;
                                         a Finished's ``file`` names its file by its place, the root
                                         names it: a gateway's paths never reach the root's words)
  ``died``  {slot, exit}                 a slot's worker died (what it sent before is in ``ev``)
  ``beat``  {}                           it lives (every BEAT seconds, so a frozen one is seen)
  ``error`` {text}                       it cannot go on (a bad frame, a setup it cannot take)
  ``got``   {slot, k, mode, data, more}  a piece of the k-th file the slot's attempt brought back
                                         (before the attempt's Finished: the root writes it)
  ``cleaned`` {}                         the ``cleanup`` asked for is done
  ``bye``   {cpu, rss}                   its last: the CPU seconds it and its children used, its peak RSS KiB
Root -> gateway:
  ``setup``   {ssh, timeout, idle_timeout, slots, multiplex, exec, files}   once, after the hello: how
              to reach the nodes; ``files``: the run's work directory, cleanup and basefiles (put ids)
  ``put``     {id, name, mode, data, more}  a piece of a file here that jobs send (``name``: its path here)
  ``job``     {slot, node, group, job, files}  start an attempt on a slot (its worker started if none);
              ``files``: {sends: [[put id, remote]], returns: [remote]}, and job.basefiles
  ``cleanup`` {nodes: [[node, n]], line}  --cleanup at the end: run ``line`` on these nodes
  ``limit``   {slot, seconds}            a straggler's limit for the slot's running attempt
  ``release`` {slot}                     the slot's idle worker goes
  ``stop``    {}                         end every running job now (TERM, KILL after a grace)
  ``quit``    {}                         end everything and exit (stdin's end means the same)
"""
import base64
import dataclasses
import json

from .events import Connected, Deferred, FileNamed, Finished, Job, Notice, Output
from .result import Ending
from .ssh import SshConfig
from .transfer import MARK_NAME

PROTOCOL = 1
BEAT = 1.0  # seconds between a gateway's beats
MAX_FRAME = 64 * 1024 * 1024  # a line longer than this is not a frame (a job's output comes in pieces)


class FrameError(ValueError):
    """A line that is not a frame of this protocol: the peer is not speaking it."""


def encode(t, **fields):
    """One frame as bytes, ending in a newline."""
    fields["t"] = t
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def decode(line, expected=None):
    """The frame (a dict) of one line; FrameError if it is not one (of the ``expected`` types)."""
    try:
        frame = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise FrameError(f"not a frame: {_shown(line)} ({e})") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("t"), str):
        raise FrameError(f"not a frame: {_shown(line)}")
    if expected is not None and frame["t"] not in expected:
        raise FrameError(f"unexpected {frame['t']!r} frame")
    return frame


def _shown(line):
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
    text = text.strip()
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


# ---- fields, checked ----------------------------------------------------
def field(frame, name, kind, optional=False):
    """``frame[name]``, of type ``kind`` (a type or a tuple of them); FrameError otherwise."""
    value = frame.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) and kind is not bool and (kind is int or kind is float or kind == (int, float)):
        raise FrameError(f"{frame.get('t')} frame: {name} is not a number")
    if kind is float:
        kind = (int, float)
    if not isinstance(value, kind):
        raise FrameError(f"{frame.get('t')} frame: {name} is missing or of the wrong type")
    return value


# ---- events: worker -> root ----------------------------------------------
_EVENTS = {cls.__name__: cls for cls in (Connected, Notice, Output, Finished, Deferred)}


def event_out(ev):
    """An event (events.py) as a JSON-ready dict."""
    d = {"k": type(ev).__name__}
    for f in dataclasses.fields(ev):
        value = getattr(ev, f.name)
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode()
        elif isinstance(value, Ending):
            value = value.name
        elif isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        elif isinstance(value, FileNamed):  # its path is the gateway's own: the root names it by k
            value = {"side": value.side, "what": value.what, "there": value.there, "k": value.k}
        d[f.name] = value
    return d


_NUMBERS = {"exit": int, "seq": int, "stream": int, "start": float, "runtime": float, "sent": int,
            "received": int, "transfer": float}


def event_in(d, slot):
    """The event a dict of ``event_out`` stands for, on the root's ``slot``; FrameError if it is
    not a well-formed one (a gateway is trusted with nothing it could crash the root with)."""
    if not isinstance(d, dict) or d.get("k") not in _EVENTS:
        raise FrameError(f"ev frame: an event of no known kind ({_shown(json.dumps(d))})")
    cls = _EVENTS[d["k"]]
    kw = {"slot": slot}
    for f in dataclasses.fields(cls):
        if f.name == "slot" or f.name not in d:
            continue
        value = d[f.name]
        if f.name == "data":
            if not isinstance(value, str):
                raise FrameError("ev frame: Output data is not base64 text")
            try:
                value = base64.b64decode(value, validate=True)
            except ValueError:
                raise FrameError("ev frame: Output data is not base64") from None
        elif f.name == "ending":
            if value not in Ending.__members__:
                raise FrameError(f"ev frame: no ending {value!r}")
            value = Ending[value]
        elif f.name == "returned":
            if value:
                raise FrameError("ev frame: files brought back through a gateway")
            value = ()
        elif f.name in _NUMBERS:
            value = field(d, f.name, _NUMBERS[f.name])
        elif f.name in ("connect", "began"):
            value = field(d, f.name, float, optional=True)
        elif f.name in ("reason", "jump_host", "text", "said"):
            value = field(d, f.name, str, optional=f.name != "text")
        elif f.name == "reused":
            value = field(d, f.name, bool, optional=True)
        elif f.name in ("replaced", "password"):
            value = field(d, f.name, bool)
        elif f.name == "file":
            value = _file_named(value)
        kw[f.name] = value
    try:
        return cls(**kw)
    except TypeError as e:
        raise FrameError(f"ev frame: {d['k']} {e}") from None


def _file_named(d):
    """The events.FileNamed of a Finished's ``file`` (None stays None): the file by its place."""
    if d is None:
        return None
    if not isinstance(d, dict):
        raise FrameError("ev frame: a file that is not an object")
    d = dict(d, t="ev")  # its fields' errors say "ev frame: ..."
    side = field(d, "side", str)
    if side not in FileNamed.SIDES:
        raise FrameError(f"ev frame: a file of no known side {_shown(side)}")
    k = field(d, "k", int)
    if k < 0:
        raise FrameError(f"ev frame: a file of no place ({k})")
    return FileNamed(side, field(d, "what", str), field(d, "there", bool), None, k)


# ---- jobs: root -> gateway -------------------------------------------------
def job_out(slot, node, group, job, sends=(), marks=()):
    """The ``job`` frame of an attempt (events.Job) for the root's slot; ``sends``: the put id of
    each of its files to send, in order (job.files.sends); ``marks``: the name of the mark made
    beside each of its sends, then of its returns, on the root (transfer.Mark)."""
    files = None
    if job.files is not None:
        files = {"sends": [[i, s.remote] for i, s in zip(sends, job.files.sends)],
                 "returns": [r.remote for r in job.files.returns]}
        if marks:
            files["marks"] = list(marks)
    return encode("job", slot=slot, node=node, group=list(group), files=files, job={
        "seq": job.seq, "command": job.command, "attempt": job.attempt, "connect": job.connect,
        "limit": job.limit, "lookup": job.lookup, "basefiles": job.basefiles,
        # --sudo: the password crosses in this frame alone (the gateway's ssh session, in memory)
        **({"sudo_asked": True, "sudo_password": job.sudo_password} if job.sudo_asked else {})})


def job_in(frame):
    """(slot, node, group, events.Job, files) of a ``job`` frame; ``files``: None, or (sends as
    [(put id, remote)], returns as [remote], marks as [name or None] of the sends, then the returns)."""
    slot, node = field(frame, "slot", int), field(frame, "node", str)
    group = field(frame, "group", list)
    if len(group) != 2 or not isinstance(group[0], str) or not isinstance(group[1], int):
        raise FrameError("job frame: group is not [node, number]")
    j = field(frame, "job", dict)
    job = Job(field(j, "seq", int), field(j, "command", str), field(j, "attempt", int), field(j, "connect", bool),
              field(j, "limit", float, optional=True), field(j, "lookup", bool),
              basefiles=bool(field(j, "basefiles", bool, optional=True)),
              sudo_asked=bool(field(j, "sudo_asked", bool, optional=True)),
              sudo_password=field(j, "sudo_password", str, optional=True))
    files = field(frame, "files", dict, optional=True)
    if files is not None:
        sends, returns = _pairs(field(files, "sends", list), "sends"), field(files, "returns", list)
        if not all(isinstance(r, str) for r in returns):
            raise FrameError("job frame: returns are not paths")
        files = (sends, returns, _marks(files, len(sends) + len(returns)))
    return slot, node, (group[0], group[1]), job, files


def _marks(d, n):
    """The ``marks`` of a files dict: n names of transfer.Mark files (None where it has none)."""
    marks = field(d, "marks", list, optional=True)
    if not marks:
        return [None] * n
    if len(marks) != n or not all(isinstance(m, str) and MARK_NAME.fullmatch(m) for m in marks):
        raise FrameError("marks: not a mark's name for each file")
    return marks


def _pairs(items, what):
    if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], int) and isinstance(p[1], str)
               for p in items):
        raise FrameError(f"{what}: not [[id, path], ...]")
    return [tuple(p) for p in items]


def files_out(files, ids, marks=()):
    """The run's transfer.Files for the setup frame (its basefiles by put id, and the name of the
    mark beside each on the root), or None."""
    if files is None:
        return None
    return {"workdir": files.workdir, "cleanup": files.cleanup, "fresh_workdir": files.fresh_workdir,
            "basefiles": [[i, b.remote] for i, b in zip(ids, files.basefiles)], "marks": list(marks) or None,
            **({"only": True} if files.only else {}), **({"preserve": True} if files.preserve else {})}


def files_in(d):
    """(workdir, cleanup, fresh_workdir, basefiles as [(put id, remote, mark)], only, preserve) of
    ``files_out`` (``only``: --copy/--rcopy, ``preserve``: --preserve; an older root sends neither)."""
    bases = _pairs(field(d, "basefiles", list), "basefiles")
    return (field(d, "workdir", str, optional=True), field(d, "cleanup", bool), field(d, "fresh_workdir", bool),
            [b + (m,) for b, m in zip(bases, _marks(d, len(bases)))], bool(field(d, "only", bool, optional=True)),
            bool(field(d, "preserve", bool, optional=True)))


def piece(frame):
    """(data bytes, more) of a ``put`` or ``got`` frame."""
    data = field(frame, "data", str)
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise FrameError(f"{frame['t']} frame: data is not base64") from None
    return raw, field(frame, "more", bool)


# ---- setup: how to reach the nodes ----------------------------------------
def setup_out(cfg, timeout, idle_timeout, slots, multiplex, exec_slots=False, files=None, name=None):
    """The ``setup`` frame: the run's SshConfig and time limits; ``slots``: the root's slot count;
    ``multiplex``: slots of a node share its connections; ``exec_slots``: each slot gets one job,
    its worker may be its ssh (execslot.py); ``name``: the gateway's, as the root calls it (what
    it says of its own failures names it)."""
    return encode("setup", slots=slots, timeout=timeout, idle_timeout=idle_timeout, multiplex=multiplex,
                  exec=exec_slots, files=files, name=name, ssh={
        "command": list(cfg.command), "options": list(cfg.options), "connect_timeout": cfg.connect_timeout,
        "alive_interval": cfg.alive_interval, "alive_count": cfg.alive_count,
        "remote_cleanup": cfg.remote_cleanup, "pipeline": cfg.pipeline, "mark": cfg.mark,
        "env": list(cfg.env), "workdir": cfg.workdir, "targets": [list(t) for t in cfg.targets], "sudo": cfg.sudo,
        **({"connect": list(cfg.connect)} if cfg.connect else {})})


def _targets(s):
    """The ssh targets an inventory gives nodes ([node, host, port, user], None where unset), checked;
    an older root sends none."""
    out = []
    for t in field(s, "targets", list, optional=True) or []:
        if not (isinstance(t, list) and len(t) == 4 and isinstance(t[0], str)
                and all(x is None or isinstance(x, str) for x in t[1:])):
            raise FrameError("setup frame: a target is [node, host, port, user]")
        out.append(tuple(t))
    return tuple(out)


def _connect(s):
    """--connect's words (the gateway reaches its nodes by that command), checked; () for ssh."""
    words = field(s, "connect", list, optional=True) or []
    if not all(isinstance(w, str) for w in words):
        raise FrameError("setup frame: connect is a list of strings")
    return tuple(words)


def setup_in(frame):
    """(SshConfig, timeout, idle_timeout, slots, multiplex, exec_slots) of a ``setup`` frame."""
    s = field(frame, "ssh", dict)
    strings = [field(s, "command", list), field(s, "options", list), field(s, "env", list)]
    if not all(isinstance(x, str) for part in strings for x in part) or not strings[0]:
        raise FrameError("setup frame: command, options and env are lists of strings")
    cfg = SshConfig(command=tuple(strings[0]), options=tuple(strings[1]),
                    connect_timeout=field(s, "connect_timeout", float), alive_interval=field(s, "alive_interval", int),
                    alive_count=field(s, "alive_count", int), remote_cleanup=field(s, "remote_cleanup", bool),
                    pipeline=field(s, "pipeline", bool), mark=field(s, "mark", str), env=tuple(strings[2]),
                    workdir=field(s, "workdir", str, optional=True), targets=_targets(s),
                    sudo=field(s, "sudo", str, optional=True), connect=_connect(s))
    return (cfg, field(frame, "timeout", float, optional=True), field(frame, "idle_timeout", float, optional=True),
            field(frame, "slots", int), field(frame, "multiplex", bool), field(frame, "exec", bool))
