"""Pure construction of ssh command lines and classification of ssh failures."""
import dataclasses
import functools
import pkgutil
import re
import shlex
import subprocess
from dataclasses import dataclass
from typing import Optional

from .errors import InputError


@dataclass(frozen=True)
class SshConfig:
    """How to reach nodes: the ssh command, user options and time limits."""

    command: tuple = ("ssh",)
    options: tuple = ()  # user -o options, first so that they win (ssh keeps the first value)
    connect_timeout: float = 10
    alive_interval: int = 5
    alive_count: int = 3
    remote_cleanup: bool = True  # end the remote job when its ssh ends
    pipeline: bool = False  # jobs go down one long-lived session a slot (the remote job loop)
    mark: str = "0" * 16  # the run's random token of the remote wrapper's start and end marks
    env: tuple = ()  # --env: "NAME=VALUE" of each variable exported to every job
    workdir: Optional[str] = None  # --workdir: where jobs run on the node (relative: to the home)
    leading: tuple = ()  # options this machine's ssh is given before the user's (kept_stdin)
    connect: tuple = ()  # --connect: the words of a command that reaches a node instead of ssh (transports.py)
    slurm_job: Optional[str] = None  # --slurm: the allocation whose nodes are reached by job steps
    targets: tuple = ()  # (node, host, port, user): where ssh goes for a node an inventory names otherwise
    sudo: Optional[str] = None  # --sudo: the user jobs run as under sudo on their nodes (sudo.py)

    @classmethod
    def from_strings(cls, command="ssh", options=(), ask=True, **kw):
        """The run's config from the user's strings, with what this machine's ssh needs first
        (``ask``: ssh is asked now; else ``asked`` adds it, once a node is known to be reached by ssh)."""
        try:
            argv = tuple(shlex.split(command))
        except ValueError as e:
            raise InputError(f"--ssh {command!r}: {e} (it is split as a shell would)") from None
        return cls(command=argv, options=tuple(options), leading=kept_stdin(argv) if ask else (), **kw)

    def asked(self):
        """The config with what this machine's ssh needs first (kept_stdin: it runs ``ssh -V``)."""
        return dataclasses.replace(self, leading=kept_stdin(self.command))


def base_argv(cfg):
    """ssh and its options common to every connection of a run."""
    argv = list(cfg.command) + list(cfg.leading)
    for opt in cfg.options:
        argv += ["-o", opt]
    argv += [
        "-o", "BatchMode=yes",
        "-o", timeout_option(cfg),
        "-o", f"ServerAliveInterval={cfg.alive_interval}",
        "-o", f"ServerAliveCountMax={cfg.alive_count}",
    ]
    return argv


# ssh's options that take a value (OpenSSH's getopt string), and the flags that would stop any
# command of clstr's from running as it must: why, for each
_VALUED = set("BbcDEeFIiJLlmOoPpQRSWw")
_REFUSED_FLAGS = {
    "n": "closes the session's stdin, which clstr's side on the node needs (clstr gives -n itself where "
         "a command needs none)",
    "N": "runs no command",
    "s": "asks for a subsystem, not a command",
}


def refused_flag(command):
    """``(flag, why)`` of the first flag in the ssh ``command`` (its words after the program, or
    after the last word naming ssh: ``sshpass -f pw ssh -n``) that clstr's sessions cannot work
    with, or None: one of _REFUSED_FLAGS, or an ``-o`` whose option is refused (_REFUSED_IN_SSH). Values
    of options (``-l nobody``, ``-p22``) are skipped; words after ``--`` or after the first that is
    not an option are not ssh's flags."""
    named = [i for i, word in enumerate(command) if i and word.rsplit("/", 1)[-1] == "ssh"]
    words = iter(command[(named[-1] if named else 0) + 1:])
    for word in words:
        if word == "--" or not word.startswith("-") or word == "-":
            return None
        for i, c in enumerate(word[1:], 1):
            if c in _REFUSED_FLAGS:
                return f"-{c}", _REFUSED_FLAGS[c]
            if c in _VALUED:
                value = word[i + 1:] if i < len(word) - 1 else next(words, "")  # or the next word
                if c == "o":
                    refused = refused_option([value], _REFUSED_IN_SSH)
                    if refused is not None:
                        return f"-o {value}", refused[1]
                break
    return None


# ssh options (-o KEY=VALUE) under which ssh runs no command of clstr's: key -> (refused values, why)
_REFUSED_OPTIONS = {
    "sessiontype": (lambda v: v.lower() != "default", "runs no command"),
    "remotecommand": (lambda v: v.lower() != "none", "runs that command instead of clstr's"),
}
# inside --ssh, StdinNull yes too: there it comes before clstr's own StdinNull=no, and the first wins
# (given with -O, after it, it loses)
_REFUSED_IN_SSH = {**_REFUSED_OPTIONS, "stdinnull": (lambda v: v.lower() in ("yes", "true"), _REFUSED_FLAGS["n"])}


def refused_option(options, refused=_REFUSED_OPTIONS):
    """``(option, why)`` of the first ssh option (``KEY=VALUE`` or ``KEY VALUE``, as -o takes them)
    under which clstr's commands cannot run (a key of ``refused`` with a refused value), or None."""
    for option in options:
        key, _, value = option.strip().replace("=", " ", 1).partition(" ")
        test, why = refused.get(key.lower(), (None, None))
        if test is not None and test(value.strip()):
            return option, why
    return None


@functools.lru_cache(maxsize=8)
def kept_stdin(command):
    """``("-o", "StdinNull=no")`` where the ssh of ``command`` knows the option (OpenSSH 8.7 on),
    else (): an ssh_config's ``StdinNull yes`` (as -n) would close every session's stdin at once,
    which the node's watcher takes for ssh gone (it ends the job), and which ends the job loop and
    a gateway's frames. Given first, before the user's options: the first value ssh reads wins.
    Asked once a process (``ssh -V``, a few ms) where the config is made from the user's strings
    (SshConfig.from_strings; a gateway for its own ssh); a command that does not say "OpenSSH_"
    gets ()."""
    try:
        p = subprocess.run([*command, "-V"], stdin=subprocess.DEVNULL, capture_output=True, timeout=3)
    except (OSError, subprocess.SubprocessError):
        return ()
    m = re.search(rb"\bOpenSSH_(\d+)\.(\d+)", p.stderr + p.stdout)
    return ("-o", "StdinNull=no") if m and (int(m.group(1)), int(m.group(2))) >= (8, 7) else ()


# The programs run on nodes live in clstr/remote/ (loop.sh, reader.sh, watch.sh), each joined
# into one line. Their constants come from here alone, filled in where they say @NAME@:
REMOTE_KILL_GRACE = 2  # a job ended on its node gets TERM, then KILL this many seconds later
QUIT = "q"  # the frame that ends the job loop
PING = "p"  # the frame that asks the loop's reader whether its runner lives: "p<pid>"
# Marks: lines ``<token>:<letter>`` the remote programs write (the token is random for each
# run); the worker strips them from the job's output, so clstr knows whether a job started and
# its exact exit status (255 included), whatever the job prints.
MARK_START = "s"  # stderr: the job starts
MARK_END = "e"  # stderr, ``e:<status>``: the job ended with this exit status
MARK_STDOUT_END = "o"  # stdout: the job's stdout ends here
MARK_BEGIN = "b"  # stdout: the job's stdout begins here (before it: an earlier job's late output)
MARK_READY = "r"  # stderr, ``r:<pid>[:a]``: the job loop is ready; its runner is that pid (":a": it takes jobs sent ahead)
MARK_LOOP_GONE = "x"  # stderr: the loop's runner is gone (a job killed it): no end mark will come
MARK_SUDO = "u"  # stderr, ``u:<sudo's words>``: --sudo: sudo refused, the job did not start (sudo.py)
SECRET = "k"  # the frame that hands the job loop sudo's password: "k", then the password's line
# Sent ahead (session.Pipelined.push): "a", then a job's frame, while the job before it runs; the
# runner starts it the moment that job ends with status 0 unless recalled, and drops it otherwise
AHEAD = "a"
RECALL = "c"  # ``c<pid>``: the reader signals the runner (USR1) that the job sent ahead goes back
MARK_DROPPED = "d"  # stderr: the runner dropped the job sent ahead (its job before failed, or recalled)
MARK_RECALLED = "w"  # stderr: the reader signalled a recall (before the running job's end mark: it holds)
_PLACES = {"KILL_GRACE": str(REMOTE_KILL_GRACE), "QUIT": QUIT, "PING": PING, "START": MARK_START,
           "END": MARK_END, "STDOUT_END": MARK_STDOUT_END, "BEGIN": MARK_BEGIN, "READY": MARK_READY,
           "LOOP_GONE": MARK_LOOP_GONE, "SECRET": SECRET, "AHEAD": AHEAD, "RECALL": RECALL,
           "DROPPED": MARK_DROPPED, "RECALLED": MARK_RECALLED}


@functools.lru_cache(maxsize=None)
def remote_program(name):
    """The remote program clstr/remote/``name`` as one line: comment lines dropped, lines joined by
    spaces, its @NAME@ constants filled in. Read once: the supervisor reads it before it forks,
    and every worker inherits it. Read through the package's loader: from a gateway's zipapp too."""
    lines = [ln.strip() for ln in pkgutil.get_data(__package__, f"remote/{name}").decode("utf-8").splitlines()]
    text = " ".join(ln for ln in lines if ln and not ln.startswith("#"))
    return re.sub(r"@([A-Z_]+)@", lambda m: _PLACES[m.group(1)], text)


# Login shells that run the wrapper themselves (with eval): no `sh` started for it.
INLINE_SHELLS = tuple(f"{d}/{sh}" for sh in ("bash", "dash", "zsh") for d in ("/bin", "/usr/bin", "/usr/local/bin"))
_IS_INLINE_SHELL = "test " + " -o ".join(f'"$SHELL" = {path}' for path in INLINE_SHELLS)  # built once, not a job

# --env values, quoted, may come to at most this many bytes: the job loop's command line carries
# them once, and it is one argument (at most 128 KiB on Linux, MAX_ARG_STRLEN), here and on the node
ENV_MAX = 120_000


def check_env(env):
    """The size --env's "NAME=VALUE"s take on a command line; ValueError over ENV_MAX, saying so."""
    size = sum(len(quote(e).encode("utf-8", "surrogateescape")) + 1 for e in env)
    if size > ENV_MAX:
        raise ValueError(f"the values come to {size:,} bytes quoted, and at most {ENV_MAX:,} can go with a "
                         "job (its shell's command line on the node carries them): export fewer or smaller ones, "
                         "or send them as a file (--tf)")
    return size


# A command line longer than this goes to the node on ssh's stdin instead of in its argument:
# one argument may hold at most 128 KiB (Linux's MAX_ARG_STRLEN), here and on the node, and the
# line mentions the job twice, quoted. Plain ssh can run a job of up to 128 KiB; so can clstr.
MAX_LINE = 100_000


def quote(text):
    """``text`` as one word for sh, csh and fish alike.

    Single quotes, as shlex.quote, except that a quote, a backslash or a ``!`` is written outside
    them, escaped (``\\'``, ``\\\\``, ``\\!``): inside single quotes fish reads ``\\'`` and ``\\\\`` as
    escapes where sh and csh keep them as they are, and csh and tcsh take ``!`` for a history
    event ("Event not found"); outside, all of them read the three the same.
    """
    if _SAFE.fullmatch(text):
        return text
    return "'" + _SPECIAL.sub(lambda m: "'\\" + m.group() + "'", text) + "'"


_SAFE = re.compile(r"[\w@%+=:,./-]+", re.ASCII)
_SPECIAL = re.compile(r"[\\'!]")


# compiled at import, in the supervisor: a worker that compiled it (re's cache is per process)
# would write some 350 KB of the memory it shares with the supervisor (measured)
_TOKEN = re.compile(r"[0-9a-zA-Z_-]{8,64}")


class Marks:
    """The marks a remote program writes with the run's token, and their removal from job output.

    A mark is a line ``<token>:<letter>`` (see the MARK_ letters), ``<token>:e:<status>`` or
    ``<token>:r:<pid>``. A job's unterminated last line may stand before it. Anything else
    holding the token (a job listing the node's processes shows the wrapper's argv) is the
    job's own output and kept whole.
    """

    def __init__(self, token):
        if not _TOKEN.fullmatch(token):
            raise ValueError(f"bad mark token {token!r}")
        self.token = token
        self.mark = token.encode()

    def strip(self, data):
        """Split complete lines into (the job's own bytes, [marks]): ("s",), ("o",), ("b",), ("x",),
        ("r", pid or None) or ("e", status)."""
        pieces = self.split(data)
        if len(pieces) == 1:
            return data, []
        return b"".join(p for p, _ in pieces), [m for _, m in pieces if m is not None]

    def split(self, data):
        """Complete lines as [(bytes, the mark after them)], in order; the last mark is None.

        Bytes standing before a mark without a newline (a job's unterminated last line) get one:
        two jobs' output never shares a line.
        """
        return self.split_until(data)[0]

    def split_until(self, data, stop=None):
        """(split's pieces up to and including the first mark of kind ``stop``, the bytes after
        that mark as they came, or None where no such mark came): what follows a job's end mark
        is the next job's to read."""
        mark = self.mark
        at = data.find(mark)
        if at < 0:
            return [(data, None)], None
        pieces, pos = [], 0
        while at >= 0:
            eol = data.find(b"\n", at)
            end = len(data) if eol < 0 else eol + 1
            found = _parse_mark(data[at + len(mark):end])
            if found is not None:
                before = data[pos:at]
                if before and not before.endswith(b"\n"):
                    before += b"\n"  # the job's last line, unterminated: it ends here
                pieces.append((before, found))
                pos = end
                if found[0] == stop:
                    return pieces, data[pos:]
            at = data.find(mark, end)
        pieces.append((data[pos:], None))
        return pieces, None

    def first_of(self, data, kinds):
        """The kind of the first mark in ``data`` (complete lines) that is one of ``kinds``, or None."""
        for _, found in self.split(data):
            if found is not None and found[0] in kinds:
                return found[0]
        return None


_MARK = re.compile(rb":(?:([obxdw])|s(?::(\d{1,10}))?|e:(\d{1,3})|r(?::(\d{1,10})(:a)?)?|u:([^\n]{0,400}?))\r?\n?")


def _parse_mark(rest):
    m = _MARK.fullmatch(rest)
    if m is None:
        return None
    if m.group(1):
        return (m.group(1).decode(),)
    if m.group(3) is not None:
        return (MARK_END, int(m.group(3)))
    if m.group(6) is not None:
        return (MARK_SUDO, m.group(6).decode("utf-8", "replace"))
    if rest.startswith(b":s"):
        return (MARK_START, int(m.group(2)) if m.group(2) else None)
    return (MARK_READY, int(m.group(4)) if m.group(4) else None, bool(m.group(5)))


class Wrapper(Marks):
    """The remote command lines of one run, one ssh session a job (its mark token is built in once).

    The wrapper (run by the login shell, or by sh for a login shell that is not sh-like) writes
    the start mark, runs the job in a process group of its own with a watcher beside it (bash does
    both itself; another shell through watch.sh, under setsid where the node has it), and writes
    the end mark with its exit status. Its own
    stderr is /dev/null (the job's and the marks go to fd 4): a shell's "Killed" for a job ended
    by a signal is not the job's output, as with plain ssh. It outlives a TERM, HUP or INT, so
    a signal the job sends it cannot skip the end mark.
    """

    def __init__(self, token, env=(), workdir=None, sudo=False):
        super().__init__(token)
        self._outer = self._wrapper(token, env, workdir)
        # any login shell (csh, fish, ...): sh runs the wrapper; costs one more program start a job
        self._universal = quote(self._outer.replace("JOB", '"$1"'))
        # the job on stdin: its first $1 bytes (sh reads no further; the watcher then reads fd 0),
        # after the --env exports, $2 bytes (sh syntax), where the line would be too long with them
        plain = self._wrapper(token, (), workdir)
        self._from_stdin = quote('e=$(head -c "$2"); eval "$e"; j=$(head -c "$1"); ' + plain.replace("JOB", '"$j"'))
        self._exports = ("export" + "".join(" " + quote(e) for e in env) + "\n").encode(
            "utf-8", "surrogateescape") if env else b""
        if sudo:  # --sudo: the same, reading sudo's password from stdin first (sudo.py)
            self._universal_pw = quote(self._wrapper(token, env, workdir, True).replace("JOB", '"$1"'))
            self._from_stdin_pw = quote('e=$(head -c "$2"); eval "$e"; j=$(head -c "$1"); '
                                        + self._wrapper(token, (), workdir, True).replace("JOB", '"$j"'))

    @staticmethod
    def _wrapper(token, env, workdir, password=False):
        """The wrapper's program (sh syntax), JOB standing for the job, ``env`` exported in it;
        ``password``: sudo's password comes first on stdin, and waits for the job on its fd 5."""
        watch = quote(remote_program("watch.sh"))
        env_args = " " + quote(workdir or "") + "".join(" " + quote(e) for e in env)
        # what the job's shell does first where the wrapper's own shell starts it (bash, or bare)
        prepare = (f"cd -- {quote(workdir)} || exit 1; " if workdir else "") + \
            (("export" + "".join(" " + quote(e) for e in env) + "; ") if env else "")
        # where no sh can be found (a restricted account), the login shell runs the job in a
        # subshell, its watcher beside it in the wrapper's group (without sleep, at once)
        bare = ('(exec 2>&4 4>&-; ( { while read -r _ <&3; do :; done; kill -0 $$ && { trap "" TERM; '
                f'kill -TERM 0; kill -KILL 0; }}; }} >/dev/null 2>&1 & ); exec 3<&-; {prepare}eval "$j")')
        # where the shell running the wrapper is bash, it starts the job and the watcher itself,
        # with no program started between it and the job: the job in a process group of its own by
        # job control (set -m for that one fork: with it on, `wait` would return when the job is
        # stopped), then TERM, HUP and INT ignored, which only the wrapper does (its children were
        # forked with them at their defaults)
        in_bash = ("set -m; (exec 2>&4 4>&- 3<&-; " + prepare + 'exec "${SHELL:-/bin/sh}" -c "$j") & p=$!; set +m; '
                   '(trap "" TERM; while read -r _ <&3; do :; done; kill -0 $p && { kill -TERM -$p; '
                   f"sleep {REMOTE_KILL_GRACE}; kill -KILL -$p; }}) >/dev/null 2>&1 4>&- & "
                   'exec 3<&-; trap "" TERM HUP INT; wait $p')
        run = (f'if [ -n "$BASH_VERSION" ]; then {in_bash}; '
               "elif command -v sh >/dev/null; then w=setsid; "
               f'command -v setsid >/dev/null || w=; $w sh -c {watch} clstr "$j"{env_args}; else {bare}; fi')
        if password:  # read (a builtin) into a variable, piped by printf (a builtin): never an argv
            run = "printf '%s\\n' \"$pw\" | { exec 5<&0 </dev/null; " + run + "; }"
        return (("IFS= read -r pw; " if password else "")
                + "exec 3<&0 </dev/null 4>&2 2>/dev/null; trap : TERM HUP INT; j=JOB; "
                f"echo {token}:{MARK_START}:$$ >&4; {run}; c=$?; "
                f"echo {token}:{MARK_END}:$c >&4; exit $c")

    def line(self, command, password=None):
        """The command line sent to the node's login shell: (line, bytes for ssh's stdin or None).

        One line that every login shell parses (sh, bash, zsh, ksh, csh, tcsh, fish): where
        ``$SHELL`` is one of INLINE_SHELLS it evals the wrapper itself, anywhere else it execs
        the universal one under sh. sshd runs the login shell of $SHELL, so the node needs no
        probe and the choice costs no round trip. A job (or --env values) too long for that goes
        on stdin, the exports first, read by the universal wrapper.
        """
        quoted = quote(command)
        if password is not None:  # --sudo, a node that asked: sh runs it, the password first on stdin
            secret = password.encode("utf-8", "surrogateescape") + b"\n"
            line = f"exec sh -c {self._universal_pw} clstr {quoted}"
            if len(line.encode("utf-8", "surrogateescape")) <= MAX_LINE:
                return line, secret
            data = command.encode("utf-8", "surrogateescape")
            return (f"exec sh -c {self._from_stdin_pw} clstr {len(data)} {len(self._exports)}",
                    self._exports + data + secret)
        inline = quote(self._outer.replace("JOB", quoted))
        line = f"{_IS_INLINE_SHELL} || exec sh -c {self._universal} clstr {quoted}; eval {inline}"
        if len(line) <= MAX_LINE // 4 or len(line.encode("utf-8", "surrogateescape")) <= MAX_LINE:
            return line, None
        data = command.encode("utf-8", "surrogateescape")
        return f"exec sh -c {self._from_stdin} clstr {len(data)} {len(self._exports)}", self._exports + data


def files_line(token, session):
    """The command line that starts the file session (clstr/remote/files.sh) under any login shell;
    ``session``: its name among the run's sessions on every node (letters and digits)."""
    return f"exec sh -c {quote(remote_program('files.sh'))} clstr {token} {session}"


def clean_line(token, workdir, paths):
    """The command line of --cleanup at a run's end (clstr/remote/clean.sh) under any login shell:
    ``workdir`` (a directory of the run's own) removed, and each of ``paths`` where the run placed it."""
    words = " ".join(quote(p) for p in [workdir or "-"] + list(paths))
    return f"exec sh -c {quote(remote_program('clean.sh'))} clstr {token} {words}"


def loop_program():
    """The job loop program (clstr/remote/loop.sh) as one line."""
    return remote_program("loop.sh")


class Loop(Marks):
    """The remote job loop of one run: one ssh session a slot, jobs sent down its stdin.

    The program is ``clstr/remote/loop.sh`` with its reader ``clstr/remote/reader.sh``; the
    login shell (any) execs sh with them and the run's token. ``frame`` makes what goes down
    stdin for one job, ``ping`` asks whether the runner lives, ``QUIT`` ends the loop.
    """

    QUIT = (QUIT + "\n").encode()

    def __init__(self, token, program=None, reader=None, env=(), workdir=None):
        super().__init__(token)
        self._line = (f"exec sh -c {quote(program or loop_program())} clstr {token} "
                      f"{quote(reader or remote_program('reader.sh'))} {quote(workdir or '')}"
                      + "".join(" " + quote(e) for e in env))

    def start_line(self):
        """The command line that starts the loop (the same for every login shell)."""
        return self._line

    @staticmethod
    def frame(command):
        """The bytes that hand ``command`` to the loop: its number of lines, then its lines."""
        data = command.encode("utf-8", "surrogateescape")
        return b"%d\n%s\n" % (data.count(b"\n") + 1, data)

    @staticmethod
    def secret(password):
        """The bytes that hand the loop sudo's password (--sudo): its jobs find it on fd 5."""
        return f"{SECRET}\n".encode() + password.encode("utf-8", "surrogateescape") + b"\n"

    @staticmethod
    def ping(pid):
        """The bytes that ask the loop's reader whether the runner ``pid`` lives (it answers only
        when it does not: the loop-gone mark)."""
        return f"{PING}{pid}\n".encode()

    def ahead(self, command):
        """The bytes that send ``command`` ahead: the runner starts it as the running job ends with
        status 0 (its start mark), or drops it (the dropped mark)."""
        return f"{AHEAD}\n".encode() + self.frame(command)

    @staticmethod
    def recall(pid):
        """The bytes that have the reader signal the runner ``pid`` that the job sent ahead goes
        back; it says it did (the recalled mark)."""
        return f"{RECALL}{pid}\n".encode()


@functools.lru_cache(maxsize=4)
def marks_of(cfg):
    """(Wrapper or None, Loop or None): what a worker of the run ``cfg`` uses to speak to nodes.

    Built once by the supervisor before it forks, so that workers share them instead of each
    building its own (some 190 KB of unique memory a worker, measured).
    """
    wrapper = Wrapper(cfg.mark, cfg.env, cfg.workdir, cfg.sudo is not None) if cfg.remote_cleanup else None
    loop = Loop(cfg.mark, env=cfg.env, workdir=cfg.workdir) if cfg.pipeline and cfg.remote_cleanup else None
    return wrapper, loop


def remote_command(command, cleanup=True, wrapper=None):
    """The command line for ``command`` (for tests and --dry-run): the job itself without cleanup."""
    if not cleanup:
        return command
    return (wrapper or Wrapper("0" * 16)).line(command)[0]


_PORTED = re.compile(r"(?P<user>[^@]+@)?(?:\[(?P<v6>[^\]]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>\d+))?")


def destination(node):
    """``node`` as ssh takes it: (its -p arguments, the destination).

    ``host:2222`` and ``[::1]:2222`` carry a port (OpenSSH's ssh:// form does not take
    IPv6 literals), ``[::1]`` is an IPv6 address; anything else is passed as it is.
    """
    m = _PORTED.fullmatch(node)
    if m is None or (m.group("port") is None and m.group("v6") is None):
        return [], node
    host = (m.group("user") or "") + (m.group("v6") or m.group("name"))
    return (["-p", m.group("port")] if m.group("port") else []), host


def job_argv(base, node, line, control_path=None, cleanup=True):
    """The argv that runs the remote command ``line`` on ``node``; over the node's master if ``control_path``.

    With ``cleanup`` (``line`` is a Wrapper's, or another of clstr's remote programs), ssh's stdin
    must be a pipe held open for as long as the job runs, and ssh gets -T: a terminal that an
    ssh_config forces (RequestTTY force) would merge the marks into stdout, end lines with CR LF,
    and stand between the watcher and the pipe. Without, ssh gets -n: the command as it is.
    """
    argv = list(base)
    if control_path:
        argv += ["-o", "ControlMaster=no", "-o", f"ControlPath={control_path}"]
    else:
        # a connection of its own, even where the user's ssh_config shares them: a master that
        # ssh_config's ControlPersist would background could keep our pipes open
        argv += ["-o", "ControlPath=none"]
    argv.append("-T" if cleanup else "-n")
    port, host = destination(node)
    return argv + port + ["--", host, line]


def alive_line(pid):
    """The command that asks a node whether process ``pid`` (a job's wrapper) still lives: it says
    ``alive`` or ``gone``, under any login shell that can find sh."""
    return f"exec sh -c 'kill -0 {int(pid)} 2>/dev/null && echo alive || echo gone'"


def config_argv(base, node):
    """The argv that prints the configuration ssh would use for ``node`` (``ssh -G``), nothing sent."""
    port, host = destination(node)
    return list(base) + ["-G", *port, "--", host]


CONFIG_WAIT = 5.0  # the longest `ssh -G` may take (it only reads configuration files)


def timeout_option(cfg):
    """The -o clstr gives for ``cfg.connect_timeout``."""
    return f"ConnectTimeout={max(1, int(round(cfg.connect_timeout)))}"


def without_timeout(argv, cfg):
    """``argv`` (a transport's ssh -G) without the ConnectTimeout clstr adds: what the user's own
    configuration and -O options say."""
    out, ours = [], timeout_option(cfg)
    for word in argv:
        if word == ours and out and out[-1] == "-o":
            out.pop()
            continue
        out.append(word)
    return out


def configured_timeout(config):
    """The ConnectTimeout in ``ssh -G`` output, in seconds (None where the configuration sets none)."""
    for line in config.splitlines():
        key, _, value = line.strip().partition(" ")
        if key.lower() == "connecttimeout":
            try:
                seconds = int(value.strip())
            except ValueError:
                return None
            return seconds if seconds > 0 else None
    return None


def jump_host(config):
    """The ProxyJump hosts in ``ssh -G`` output (``None`` when it connects directly)."""
    for line in config.splitlines():
        key, _, value = line.strip().partition(" ")
        if key.lower() == "proxyjump":
            value = value.strip()
            return value if value and value.lower() != "none" else None
    return None


# A master left behind by a supervisor killed with SIGKILL exits after this long without clients.
MASTER_IDLE = 60


def master_argv(base, node, control_path, persist=None):
    """The argv that opens the node's ControlMaster and backgrounds once authenticated; it idles
    on ``persist`` seconds without clients (--persist), else MASTER_IDLE."""
    port, host = destination(node)
    idle = MASTER_IDLE if persist is None else max(1, int(round(persist)))
    return list(base) + [
        "-o", "ControlMaster=yes", "-o", f"ControlPath={control_path}",
        "-o", f"ControlPersist={idle}", "-n", "-N", "-f", *port, "--", host,
    ]


def exit_argv(base, control_path, host="clstr"):
    """The argv that asks the master on ``control_path`` to exit (``ssh -O exit``; the host names
    nothing: the socket is given)."""
    return list(base) + ["-o", f"ControlPath={control_path}", "-O", "exit", "--", host]


# ssh's own messages, whole lines as OpenSSH writes them: (pattern, reason, before the command ran).
# Read only where no job could have written (the master's log, stderr before the start mark) or,
# without remote cleanup, when ssh exited 255.
_ERRORS = [(re.compile(p), reason, before) for p, reason, before in [
    (r"ssh: connect to host \S+ port \S+: Connection refused", "refused", True),
    (r"ssh: connect to host \S+ port \S+: (Connection|Operation) timed out|"
     r"Connection timed out during banner exchange", "timed out", True),
    (r"ssh: connect to host \S+ port \S+: (No route to host|Network is unreachable)", "unreachable", True),
    (r"(\S+: )?Permission denied \(.*\)\.|Received disconnect from .*Too many authentication failures.*|"
     r"Too many authentication failures.*", "authentication", True),
    (r"Host key verification failed\.|.*REMOTE HOST IDENTIFICATION HAS CHANGED.*|No \S+ host key is known for .*",
     "host key", True),
    (r"ssh: Could not resolve hostname .*", "unknown host", True),
    (r"kex_exchange_identification: .*|Connection (closed|reset) by \S+ port \d+|"
     r"banner exchange: Connection to \S+ port \d+: .*", "connection closed", True),
    (r".*Session open refused by peer|channel \d+: open failed: .*", "session refused", True),
    (r"Cannot execute command-line and remote command\.",
     "RemoteCommand in ssh_config", True),  # ssh then runs no other command
    (r"Control socket connect\(.*\): .*|mux_client_\w+: .*", "connection lost", True),
    (r"Timeout, server \S+ not responding\.", "connection lost", False),
    (r"Connection to \S+ closed by remote host\.|client_loop: send disconnect: .*|"
     r"Read from remote host \S+: .*|packet_write_wait: Connection to .*", "connection lost", False),
]]


_SAID = re.compile(r"(ssh: connect to host \S+ port \S+: |ssh: |\S+@\S+: |\S+: (?=Permission denied))")


def _last_error(stderr_tail):
    """(ssh's line, reason, never_ran) of the last of ssh's own failure lines in its last stderr
    lines (``_ERRORS``), or None."""
    text = stderr_tail.decode("utf-8", "replace") if isinstance(stderr_tail, bytes) else stderr_tail
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines[-8:]):
        for pattern, reason, never_ran in _ERRORS:
            if pattern.fullmatch(line):
                return line, reason, never_ran
    return None


def said(stderr_tail):
    """ssh's own words in its last stderr lines for the failure ``classify`` names: the line it
    matched, without the host and port ssh repeats ("Connection refused", "Permission denied
    (publickey)", "Could not resolve hostname x: Name or service not known"); None if none."""
    found = _last_error(stderr_tail)
    return None if found is None else (_SAID.sub("", found[0], count=1).rstrip(".") or None)


def classify(stderr_tail):
    """Why ssh failed, from ssh's own last stderr lines: (reason, never_ran) or (None, False)."""
    found = _last_error(stderr_tail)
    return (None, False) if found is None else found[1:]
