"""The command line: argparse, reading job and node files, profiles, the summary and exit status.

This is the only module that calls sys.exit.
"""
import argparse
import difflib
import json
import os
import signal
import socket
import sys
import time
from typing import NamedTuple

from . import __version__, api, checks, hostlist, templates
from .userfiles import read_lines, read_text
from .errors import InputError
from .nodes import Sources
from .options import Options
from .result import FAILED, REQUEUED, Ending
from .supervisor import stderr_log
from .words import counted

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = """\
examples:
  clstr -n host1 -n host2 -j 'echo hello' -j 'echo world' -j 'hostname'
  clstr --node-file nodes.txt --job-file jobs.txt
  clstr <(for i in $(seq 10); do echo "echo I am job $i"; done) -N nodes.txt
  clstr -n host1 host2 -N more-nodes.txt -- jobs.txt   # -n/-N/-J take several values
  clstr -n 'lab[01-40]' -E 'grep "model name" /proc/cpuinfo' | sort | uniq -c
  clstr -p lab-machines --status --joblog run.log jobs.txt
  clstr -p lab-machines --joblog run.log --resume jobs.txt     # only what is left
  clstr -p lab-machines --joblog run.log --resume-failed jobs.txt  # and what failed
  clstr -p lab-machines --trc {.}.out -- 'sort {} > {.}.out' ::: data/*.txt
  clstr -N nodes.txt --bf simulate --wd ... --cleanup --halt soon,fail=1 -- './simulate {}' ::: 1 2 3

nodes:
  A node is an ssh destination (host, user@host, host:port, an IPv6 address, or
  a Host alias of your ssh config). Lists read as in pdsh and clush:
  node[01-12], r[1-2]n[1-4], n[1-10/2], a,b,-c (pdsh's exclusion), n[1-9]!n5,
  ^FILE (its lines), @NAME (a profile), /REGEX/ (a filter). A node listed N
  times, or written N/host, has N slots: up to N of its jobs at once.

failures (--job-failures node, the default):
  any non-zero exit of a job presumes its node broken: the job goes back to the
  queue and the node leaves the pool, so jobs like
  '[ -z "$(users)" ] && run' filter out busy machines. A job that fails on
  --max-attempts distinct nodes is marked failed. If failing jobs retired every
  node while jobs wait, those nodes come back (a job never returns to a node it
  failed on). With --job-failures job, only ssh failures (the job never started:
  refused, timed out, authentication, host key; or its connection was lost)
  retire the node; any other exit, 255 included, fails the job, retried --retries
  times. The remote wrapper marks each job's start and exact exit status, so
  nothing a job prints is taken for ssh's failure.
  Retired nodes come back: a connection failure's node is probed again after
  --reprobe seconds (doubling to 10 minutes), a filtered node is let back for
  other jobs; authentication and host-key failures stay out. With every node
  out, clstr waits at most --reprobe-for seconds for one to come back.

profiles:
  -p NAME looks NAME up in, first hit wins: each --profiles FILE, each file of
  $CLSTR_PROFILES (colon-separated), $XDG_CONFIG_HOME/clstr/profiles.yaml
  (~/.config/clstr/profiles.yaml), /etc/clstr/profiles.yaml.

exit status:
  0   every job succeeded
  1   some job failed or was not run (the summary on stderr says which, why)
  2   bad usage or input; nothing was run
  130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM, 129 by SIGHUP (terminal
      closed): running jobs were ended, the summary, job log and JSON written
  141 the reader of stdout went away (clstr ... | head): running jobs were ended
  with -S/--max-exit (as pdsh -S, clush -S): the largest exit status of the jobs
      instead of 0/1 (255 for a job not run, timed out or cut off by ssh)
"""


SHORT_HELP = """\
usage: clstr [options] [JOB_FILE ...]  or  clstr [options] COMMAND ::: ARGS
Run shell commands (jobs) in parallel on many machines (nodes) over SSH.

what people use most (every option: clstr --help-all, or man clstr):
  -n, -w HOST...       nodes: node[01-12], 4/host (4 slots), @group, ':' (here)
  -N FILE...           files of nodes, one a line
  -p NAME              a profile's nodes and settings
                       (profiles: ~/.config/clstr/profiles.yaml)
  --slots N            N slots on every node (GNU parallel's -j)
  JOB_FILE..., -J FILE a file of jobs, one a line ('-': stdin)
  -j CMD               a job (repeatable)
  COMMAND ::: ARGS     jobs from inputs, as GNU parallel ({} {.} {#} {host})
  -E, --on-each-node CMD   one command on every node; -b gathers same output
  -c PATH --dest DIR   copy to every node; --rcopy PATH: each node's back
  --trc T              send a job's input, bring T back (--tf, --return)
  --job-failures job   a non-zero exit fails the job (default: its node is
                       presumed broken, the job moves on)
  --timeout DURATION   end a job after this long (90s, 5m, 2h)
  --halt soon,fail=1   stop at the first failure
  --joblog FILE        a row per job; --resume: run only what is left
  -f N                 at most N jobs at once
  -o FILE, --tag       job output to a file; each line prefixed with its node
  --json FILE, -s      a JSON summary at the end; a live status line
  --dry-run            the plan, nothing run
  --connect TEMPLATE   reach nodes by a command ('docker exec -i {host}')
  --slurm              inside a Slurm allocation: its nodes, by job steps

examples:
  clstr -n 4/: -- 'echo {} from $(hostname)' ::: a b c d   # here, no ssh
  clstr jobs.txt -N nodes.txt                  # a job file on a node file
  clstr -w 'lab[01-40]' -b -E 'uname -r'       # one command on every node
  clstr -p lab --joblog run.log --resume jobs.txt          # only what is left

exit status: 0 every job succeeded; 1 some job failed or was not run (the
  summary says which and why); 2 bad usage, nothing run; 130 interrupted
  (Ctrl-C), 143 SIGTERM, 129 SIGHUP; with -S the largest exit status of the jobs
"""


class _ShortHelp(argparse.Action):
    """-h/--help: the options people use most, examples, exit statuses; --help-all every option."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser._print_message(SHORT_HELP, sys.stdout)
        parser.exit()


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InputError(f"{message}{self._did_you_mean(message)} (see clstr --help)")

    def _did_you_mean(self, message):
        """For an unknown option, the nearest known ones (as Python 3.14's argparse suggests them)."""
        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return ""
        known = [f for a in self._actions for f in a.option_strings]
        for word in message[len(prefix):].split():
            if word.startswith("-"):
                near = nearest(word.split("=", 1)[0], known)
                if near:
                    return f"; did you mean {' or '.join(near)}?"
        return ""


def nearest(word, known, cutoff=0.7):
    """The one or two of ``known`` nearest ``word``, those that begin most like it first (a typo
    is seldom in the first letters): a second only where it is as near as the first (``--timout``:
    --timeout, not --stdout too; ``--retry``: --retries, not --return)."""
    scored = []
    for k in known:
        ratio = difflib.SequenceMatcher(None, word, k).ratio()
        if ratio >= cutoff:
            scored.append((len(os.path.commonprefix([word, k])), ratio, k))
    scored.sort(reverse=True)
    return [k for p, r, k in scored[:2] if p == scored[0][0] and r >= scored[0][1] - 0.05]


def _whole(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _timeout(text):
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {checks.DURATION_FORMS} or N%, got {text!r}") from None
        if not pct > 0:
            raise argparse.ArgumentTypeError(f"a percentage of the median must be more than 0, got {text!r}")
        return ("%", pct)
    try:
        return checks.duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {checks.DURATION_FORMS} or N%, got {text!r}") from None


def _seconds(text):
    """A duration, as every duration option takes it: seconds, or a number with s, m, h or d."""
    try:
        return checks.duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {checks.DURATION_FORMS}, got {text!r}") from None


def build_parser():
    DEFAULT = Options()  # the defaults are the library's: one list of them
    p = _Parser(prog="clstr", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG, add_help=False,
                usage="clstr [options] [JOB_FILE ...]  or  clstr [options] COMMAND ::: ARGS",
                description="Run shell commands (jobs) in parallel on many machines (nodes) over SSH.\n"
                            "Jobs come from job files, -j, -E, or as GNU parallel makes them:\n"
                            "  clstr [options] COMMAND ::: ARGS   (and ::::, :::+, ::::+)")
    p.add_argument("-h", "--help", action=_ShortHelp, help="the options people use most, and exit")
    p.add_argument("--help-all", action="help", help="every option, and exit")
    p.add_argument("job_files", nargs="*", metavar="JOB_FILE",
                   help="files of jobs, one shell command a line ('-' is stdin)")
    _nodes_options(p)
    _jobs_options(p)
    _files_options(p)
    _execution_options(p, DEFAULT)
    _output_options(p)
    _monitoring_options(p)
    _ssh_options(p, DEFAULT)
    _gateways_options(p, DEFAULT)
    return p


def _nodes_options(p):
    """The nodes options of the command line."""
    g = p.add_argument_group("nodes")
    g.add_argument("-n", "--node", "-w", dest="node", action="extend", nargs="+", default=[], metavar="HOST",
                   help="nodes (several may follow; repeatable): node[01-12], N/host for N slots, "
                        "a,b,-c, ^FILE, @GROUP; ':' is this machine, no ssh (4/: four slots); "
                        "-w is pdsh's and clush's spelling")
    g.add_argument("-i", "--inventory", dest="inventories", action="append", default=[], metavar="FILE",
                   help="an Ansible inventory (INI or YAML): @GROUP names its groups, and its hosts' "
                        "ansible_host, ansible_port and ansible_user say where ssh goes (repeatable)")
    g.add_argument("-g", "--genders", action="append", default=[], metavar="ATTR",
                   help="the nodes of a genders file with this attribute (ATTR=VALUE: with this value; a comma "
                        "list: any of them), as pdsh -g (repeatable)")
    g.add_argument("--genders-file", metavar="FILE",
                   help="the genders file -g reads (default: $CLSTR_GENDERS, then /etc/genders)")
    g.add_argument("-N", "--node-file", action="extend", nargs="+", default=[], metavar="FILE",
                   help="files of nodes, one a line; blank lines and # comments skipped")
    g.add_argument("-p", "--profile", action="append", default=[], metavar="NAME",
                   help="a named node group from a profile file (repeatable)")
    g.add_argument("--profiles", action="append", default=[], metavar="FILE",
                   help="a profile file searched before the default ones (repeatable)")
    g.add_argument("--slots", type=_whole, metavar="N",
                   help="N slots on every node (at most N jobs at once on each), however it was listed")
    g.add_argument("--slurm", action="store_true",
                   help="inside a Slurm allocation: run on its nodes (or those given) through job steps, "
                        "a slot for each of its tasks (see --slots)")
    g.add_argument("-x", "--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out these nodes (repeatable, ranges allowed)")
    g.add_argument("--list-profiles", action="store_true", help="list the profiles found and exit")


def _jobs_options(p):
    """The jobs options of the command line."""
    g = p.add_argument_group("jobs")
    g.add_argument("-j", "--job", action="append", default=[], metavar="CMD", help="a job (repeatable)")
    g.add_argument("-J", "--job-file", action="extend", nargs="+", default=[], metavar="FILE",
                   help="a file of jobs, one a line; blank lines skipped ('-' is stdin)")
    g.add_argument("-E", "--on-each-node", metavar="CMD",
                   help="run CMD once on each distinct node instead of jobs")
    g.add_argument("--sudo", action="store_true",
                   help="run every job as root under sudo on its node; sudo's password is asked once, here, "
                        "and only if a node's sudo asks for one")
    g.add_argument("--sudo-user", metavar="USER",
                   help="as --sudo, but as USER (sudo -u USER)")
    g.add_argument("--env", action="append", default=[], metavar="NAME",
                   help="export this variable's value here to every job on the node (repeatable; a glob such as "
                        "'MY_*' names every variable it matches)")


def _files_options(p):
    """The files options of the command line."""
    g = p.add_argument_group("files (as GNU parallel's; templates take {} and the other replacement strings)")
    g.add_argument("--transferfile", "--tf", action="append", default=[], metavar="T",
                   help="send this file to the node before the job (repeatable; relative paths go under the work "
                        "directory, the part after a /./ too)")
    g.add_argument("--return", dest="returnfile", action="append", default=[], metavar="T",
                   help="bring this file back from the node after the job, to the same relative path here "
                        "(repeatable; written whole or not at all; {host} in T: the node's name)")
    g.add_argument("--cleanup", action="store_true",
                   help="remove the files sent and brought back from the node after the job (and the basefiles "
                        "and a --workdir ... at the end)")
    g.add_argument("--trc", action="append", default=[], metavar="T",
                   help="the same as --transferfile {} --return T --cleanup")
    g.add_argument("-c", "--copy", action="extend", nargs="+", default=[], metavar="PATH",
                   help="copy files and directories to every node (DIR/: its contents), to --dest or the same "
                        "place, as clush -c and pdcp; no jobs with it")
    g.add_argument("--rcopy", action="extend", nargs="+", default=[], metavar="PATH",
                   help="bring PATH back from every node as DEST/NAME.NODE (--dest, or its own directory), "
                        "as clush --rcopy and rpdcp")
    g.add_argument("--dest", metavar="DIR", help="where --copy puts its files on the nodes, --rcopy here")
    g.add_argument("--preserve", action="store_true",
                   help="--copy and --rcopy keep each file's modification time and mode (clush -p, pdcp -p)")
    g.add_argument("--basefile", "--bf", action="append", default=[], metavar="FILE",
                   help="send FILE to each node once, before its first job (repeatable)")
    g.add_argument("--workdir", "--wd", metavar="DIR",
                   help="run the jobs in DIR on the node, made if needed ('...': a fresh directory of the run; "
                        "'.': the same path relative to the home as here)")


def _execution_options(p, DEFAULT):
    """The execution options of the command line."""
    g = p.add_argument_group("execution")
    g.add_argument("-m", "--max-nodes", "-f", "--fanout", dest="max_nodes", type=_whole, metavar="N",
                   help="at most N jobs, and N worker processes, at once (0: no limit, the default); "
                        "-f/--fanout is pdsh's and clush's spelling")
    g.add_argument("--max-connecting", type=_whole, default=DEFAULT.max_connecting, metavar="N",
                   help="at most N new ssh connections being opened at once (key exchanges in flight; "
                        "default 32, 0: no limit); running jobs are not limited by it")
    g.add_argument("-u", "--max-node-uses", type=_whole, metavar="N",
                   help="a slot retires after N jobs (0: no limit, the default)")
    g.add_argument("--timeout", type=_timeout, metavar="DURATION|N%", action="append", default=[],
                   help="end a job after this long (every DURATION: seconds, or 90s, 5m, 2h, 1d): it fails "
                        "(timeout), its node stays; N%% (as GNU parallel): "
                        "end a job running past N%% of the median runtime of the jobs done so far (once 3 "
                        "succeeded): a straggler, re-run on another node (both forms may be given)")
    g.add_argument("--idle-timeout", type=_seconds, metavar="DURATION",
                   help="end a job that wrote nothing for this long: it fails (idle timeout), its node stays")
    g.add_argument("--reprobe", type=_seconds, default=DEFAULT.reprobe, metavar="DURATION",
                   help="probe a node retired for a connection failure again after this long, the wait doubling "
                        "up to 10 minutes; a node a job's exit retired comes back after it too (default 30, "
                        "0: retired nodes stay out)")
    g.add_argument("--reprobe-for", type=_seconds, default=DEFAULT.reprobe_for, metavar="DURATION",
                   help="with jobs waiting and every node retired, wait at most this long for one to come back "
                        "(default 900)")
    g.add_argument("--job-failures", choices=("node", "job"), default=DEFAULT.job_failures,
                   help="what a job's non-zero exit means: the node is broken (default) or the job failed")
    g.add_argument("--max-attempts", type=_whole, default=DEFAULT.max_attempts, metavar="N",
                   help="distinct nodes a job may fail on before it is failed (default 3)")
    g.add_argument("--retries", type=_whole, default=DEFAULT.retries, metavar="N",
                   help="with --job-failures job: re-runs of a failed job on another node (default 0)")
    g.add_argument("--quarantine", type=_whole, default=DEFAULT.quarantine, metavar="K",
                   help="with --job-failures job: retire a node where K distinct jobs failed that then succeeded "
                        "on other nodes (a black hole; needs --retries; default 3, 0: never)")
    g.add_argument("--halt", "--halt-on-error", dest="halt", metavar="WHEN,WHAT=N",
                   help="stop once N jobs (or N%%) failed, succeeded or are done, as GNU parallel's: soon,fail=1 starts "
                        "no new job after the first failure, now,fail=1 ends the running ones too (TERM, then KILL); "
                        "the jobs left are not run")
    g.add_argument("--joblog", metavar="FILE",
                   help="append a row per ended job to FILE, in GNU parallel's --joblog columns")
    g.add_argument("--resume", action="store_true",
                   help="with --joblog: skip the jobs it records as ended (succeeded or failed)")
    g.add_argument("--resume-failed", action="store_true",
                   help="with --joblog: skip the jobs it records as succeeded; run the failed ones again")
    g.add_argument("-S", "--max-exit", action="store_true",
                   help="exit with the largest exit status of the jobs (255: not run), as pdsh -S and clush -S")
    g.add_argument("--dry-run", action="store_true",
                   help="print the plan (nodes, slots, jobs, options) and exit without connecting")


def _output_options(p):
    """The output options of the command line."""
    g = p.add_argument_group("output")
    g.add_argument("-o", "--stdout", nargs="?", const=os.devnull, metavar="FILE",
                   help="jobs' stdout to FILE (no FILE: discard)")
    g.add_argument("-e", "--stderr", nargs="?", const=os.devnull, metavar="FILE",
                   help="jobs' stderr to FILE (no FILE: discard)")
    g.add_argument("--tag", action="store_true", help="prefix each output line with 'node: '")
    g.add_argument("--tag-job", action="store_true", help="prefix each output line with 'seq: '")
    g.add_argument("--group", action="store_true", help="print a job's output whole when it ends")
    g.add_argument("--output-dir", metavar="DIR", help="each job's output in DIR/<seq>.out and DIR/<seq>.err "
                   "(DIR's {host}: the node's name, a directory a node)")
    g.add_argument("-b", "--gather", action="store_true",
                   help="with --on-each-node: identical output once, under its folded node list "
                        "(-b: clush's spelling)")
    g.add_argument("--json", metavar="FILE", help="a machine-readable summary at the end ('-': stdout)")


def _monitoring_options(p):
    """The monitoring options of the command line."""
    g = p.add_argument_group("monitoring")
    g.add_argument("-s", "--status", action="store_true", help="a live status line on stderr")
    g.add_argument("--bar", action="store_true", help="a progress bar with the status line")
    g.add_argument("-A", "--active-nodes", metavar="FILE",
                   help="keep FILE listing the running jobs, 'node: <'Job' 'command'>' a line")
    g.add_argument("--state", metavar="FILE",
                   help="keep FILE a JSON snapshot of the run (counts, rate, ETA, nodes, running jobs), "
                        "replaced atomically every second; schema in docs/output.md")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="report every attempt and a summary (-vv as the original clstr: the same)")
    g.add_argument("-V", "--version", action="version", version=f"clstr {__version__}")


def _ssh_options(p, DEFAULT):
    """The ssh options of the command line."""
    g = p.add_argument_group("ssh")
    g.add_argument("--ssh", metavar="CMD", help="the ssh command and leading arguments, not -n, -N or -s "
                   "(default: $CLSTR_SSH, a profile's ssh, or 'ssh')")
    g.add_argument("-O", "--ssh-option", action="append", default=[], metavar="OPTION",
                   help="an ssh -o option, e.g. Port=2222 (repeatable; wins over profiles and defaults)")
    g.add_argument("--connect-timeout", type=_seconds, metavar="DURATION",
                   help="give up connecting to a node after this long (default: your ssh_config's "
                   "ConnectTimeout, else 10)")
    g.add_argument("--no-multiplex", dest="multiplex", action="store_false",
                   help="a new ssh connection per job instead of one shared connection per node")
    g.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                   help="one ssh session a job, as plain ssh, instead of each slot's jobs down one session")
    g.add_argument("--no-remote-cleanup", dest="remote_cleanup", action="store_false",
                   help="do not wrap jobs so that they end on the node when their ssh ends")
    g.add_argument("--connect", metavar="TEMPLATE",
                   help="reach each node (but ':') by this command instead of ssh: it must run its arguments "
                        "there, {host} is the node's name, e.g. 'docker exec -i {host}' or "
                        "'kubectl exec -i {host} --' (pdsh's -R exec)")
    g.add_argument("--ssh-delay", type=_seconds, default=DEFAULT.ssh_delay, metavar="DURATION",
                   help="at least this long between starting two jobs (stay under sshd's MaxStartups)")
    g.add_argument("--persist", type=_seconds, metavar="DURATION",
                   help="keep the shared connections this long idle after the run, for the "
                        "next run with --persist to the same nodes to ride on, with no handshake")
    g.add_argument("--persist-stop", action="store_true",
                   help="end the persisted connections (to the nodes given, or all of yours) and exit")


def _gateways_options(p, DEFAULT):
    """The gateways options of the command line."""
    g = p.add_argument_group("gateways (one level, as ClusterShell's tree mode)")
    g.add_argument("--gateway", action="append", default=[], metavar="GW=NODES",
                   help="drive NODES through gateway GW, where clstr runs itself over ssh (repeatable)")
    g.add_argument("--topology", metavar="FILE",
                   help="the gateways of ClusterShell's topology.conf FILE ([routes], one level)")
    g.add_argument("--gateway-python", default=DEFAULT.gateway_python, metavar="CMD",
                   help="the python (3.9+) that runs clstr on the gateways (default: python3)")
    g.add_argument("--gateway-fallback", choices=("direct", "none"), default=DEFAULT.gateway_fallback,
                   help="nodes whose gateways are all refused or lost: driven directly from here (direct, "
                        "the default) or left waiting for a gateway (none)")


def read_jobs(args):
    jobs = list(args.job)
    for path in args.job_file + args.job_files:
        jobs.extend(line for _, line in read_lines(path, "job file") if line.strip())
    return jobs


def jobs_from_inputs(args, inputs):
    """The jobs of ``COMMAND ::: ARGUMENTS`` (templates.py): the command is the words before the
    first separator that are no option's."""
    if args.job or args.job_file or args.on_each_node is not None:
        raise InputError("give jobs either as COMMAND ::: ARGUMENTS or with -j/-J/-E and job files, not both")
    if not args.job_files:
        raise InputError("no command before ::: (a command after -n, -N or -J is taken for their values: give it "
                         "before them, or after --)")
    srcs = templates.sources(inputs, lambda path: [line for _, line in read_lines(path, "argument file")])
    made = templates.jobs_with_inputs(" ".join(args.job_files), srcs, checks.MAX_COUNT)
    args.job_files = []
    return [c for c, _ in made], [v for _, v in made]


def _profile_files(args):
    from .profiles import default_search_path  # yaml is loaded only when profiles are used
    return [(p, True) for p in args.profiles] + default_search_path()


def list_profiles(args, out):
    from .profiles import ProfileSet
    ps = ProfileSet(_profile_files(args))
    if not ps.profiles:
        out.write("no profiles found (searched: " + ", ".join(p for p, _ in _profile_files(args)) + ")\n")
        return
    for name in ps.names():
        r = ps.resolve(name)
        out.write(f"{name}\t{counted(len(r.slots), 'node')}\t{counted(len(r.hosts), 'slot')}\t{ps.get(name).path}\n")


class Given(NamedTuple):
    """The nodes of the run, and its Options with the profiles' settings (the command line's win)."""

    nodes: list
    options: Options


def sources(args):
    """Where the run's nodes come from, as the command line says (nodes.Sources)."""
    return Sources(tuple(args.node), tuple(args.node_file), tuple(args.profile or ()), tuple(args.profiles),
                   tuple(args.genders), args.genders_file, tuple(args.inventories))


def command_line_options(args, gateways=None):
    """The Options the command line gives, before profiles: argparse's dests are Options' names,
    but for those it spells otherwise (--timeout's two forms, --trc, -O, -v)."""
    names = set(Options.names())
    given = {name: value for name, value in vars(args).items() if name in names}
    given.update(
        ssh=args.ssh or os.environ.get("CLSTR_SSH") or None, ssh_options=list(args.ssh_option),
        timeout=next((t for t in reversed(args.timeout) if not isinstance(t, tuple)), None),
        timeout_percent=next((t[1] for t in reversed(args.timeout) if isinstance(t, tuple)), None),
        transferfile=args.transferfile + ["{}"] * bool(args.trc), returnfile=args.returnfile + args.trc,
        cleanup=args.cleanup or bool(args.trc), verbose=bool(args.verbose), gateways=gateways or None,
        stdout=None, stderr=None)
    return Options(**{name: tuple(v) if isinstance(v, list) else v for name, v in given.items()})


def gather_nodes(args, live=False):
    """The run's node patterns from --node, --node-file and --profile, and its Options with the
    profiles' settings (a Given): the command line's own settings win.

    ``live``: the node list read again mid-run (only regular files are read).
    """
    src = sources(args)
    nodes = src.nodes(live, none_ok=args.slurm)
    gateways = {}
    if not live:
        from . import routes
        for text in args.gateway:
            for gw, reach in routes.gateway_option(text).items():
                gateways.setdefault(gw, []).extend(reach)
        if args.topology:
            text = read_text(args.topology, "topology file")
            for gw, reach in routes.topology(text, args.topology, socket.gethostname()).items():
                gateways.setdefault(gw, []).extend(reach)
    # ssh keeps the first value of an option: the command line's come first and win
    return Given(nodes, src.settings(live, workdir=args.workdir).fill(command_line_options(args, gateways)))


def live_nodes(args):
    """The node files and profile files of the run, read again when they change (as GNU parallel
    re-reads --slf): a NodeSource, or None when the nodes come from -n alone."""
    from .nodesource import NodeSource
    files = sources(args).watched()
    return NodeSource(files, lambda: gather_nodes(args, live=True).nodes) if files else None


def _open_json(path):
    if path is None:
        return None
    if path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot write: {e.strerror}", path) from None


def _open_out(path, default):
    if path is None:
        return default
    try:
        return open(path, "wb")
    except OSError as e:
        raise InputError(f"cannot write: {e.strerror}", path) from None


def _clock(epoch):
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def summary(result, write, verbose, each_node=False, joblog=None):
    """The closing lines on stderr: each job not succeeded with why (jobs not run for one reason
    folded, past FOLD_AFTER), retired nodes, a hint to --resume, and the counts last.

    ``each_node`` (--on-each-node): also the nodes it failed or did not run on, folded, as a
    pdsh or pssh user looks for them at the end. ``joblog``: the job log kept, if any.
    """
    n = len(result.jobs)
    ok, failed, not_run = result.succeeded, result.failed, result.not_run
    if result.ok and not result.retired_nodes and not result.history and not result.removed and not verbose \
            and not result.halted:
        return
    line = f"{counted(n, 'job')}: {len(ok)} succeeded, {len(failed)} failed, {len(not_run)} not run"
    if result.skipped:
        line += f" ({result.skipped} skipped, done in an earlier run)"
    for j in failed:
        nodes = failed_on(j)
        where = f" on {', '.join(nodes)}" if nodes else ""
        write(f"failed: job {j.seq}{where} ({j.reason}): {_short(j.command)}")
    for reason, jobs in _by_reason(not_run):
        if len(jobs) > FOLD_AFTER:
            write(f"{len(jobs)} jobs not run ({reason}): jobs {hostlist.fold_numbers([j.seq for j in jobs])}")
        else:
            for j in jobs:
                write(f"not run: job {j.seq} ({reason}): {_short(j.command)}")
    if result.error:
        write(f"stopped early: {result.error}")
    if result.halted:
        write(f"{result.halted} (--halt)" + ("; the jobs it left were not run, as asked" if result.halted_by != "fail"
                                             else ""))
    slow = result.slowest(3)
    if slow and n > 1 and slow[0].attempts[-1].runtime >= 0.05:  # "(0.0 s)" would say nothing
        write("slowest: " + ", ".join(f"job {j.seq} on {j.attempts[-1].node} ({j.attempts[-1].runtime:.1f} s)"
                                      for j in slow))
    _nodes_summary(result, write)
    if each_node:
        for what, jobs in (("failed", failed), ("not run", not_run)):
            nodes = [j.node for j in jobs if j.node]
            if nodes:
                write(f"{what} on {hostlist.fold(nodes)}")
    if joblog and (failed or not_run):
        write(f"the job log {joblog} has a row of each job that ended: --joblog {joblog} --resume runs the "
              "jobs not run" + (", --resume-failed the failed ones too" if failed else ""))
    write(line + ".")


FOLD_AFTER = 3  # jobs not run for one reason said one a line up to this many, then in one line
SHOWN_COMMAND = 72  # a longer command is cut in the summary (the job log and --json keep it whole)



def _nodes_summary(result, write):
    """The summary's lines on nodes: retired (with ssh's own words), back, removed, busy, behind a
    refusing jump host, and the gateways."""
    if result.retired_nodes:
        # ssh's own words where they say more than the reason, as pdsh shows them
        said = {k: w for k, w in result.said.items() if w.lower() != result.retired_nodes.get(k, "").lower()}
        write("retired nodes: " + ", ".join(
            f"{k} ({v}" + (f": {said[k]}" if k in said else "")
            + ("; a configuration error, not probed again)" if k in result.permanent else ")")
            for k, v in result.retired_nodes.items()))
    back = {k: [a for a in v if a.back is not None] for k, v in result.history.items()}
    if any(back.values()):
        write("nodes that came back: " + ", ".join(
            f"{k} (" + "; ".join(f"out {_clock(a.left)}-{_clock(a.back)}: {a.reason}" for a in v) + ")"
            for k, v in back.items() if v))
    if result.removed:
        write("removed from the node list during the run: " + hostlist.fold(result.removed))
    if result.refusals:
        write("busy sshds refused handshakes or sessions, tried again: " + ", ".join(
            f"{k} ({v})" for k, v in sorted(result.refusals.items())))
    for name, jump in sorted(result.jump_hosts.items()):
        if jump["refused"]:
            write(f"jump host {name} (the ProxyJump of {counted(len(jump['nodes']), 'node')}) refused "
                  f"{counted(jump['refused'], 'handshake')}: at most {jump['open_limit']} opened through it at once by the end")
    if result.gateways:
        write("gateways: " + "; ".join(_gateway_text(name, g, result.routes)
                                       for name, g in result.gateways.items()))

def _short(command):
    """A job's command as a summary line shows it: its first line, cut past SHOWN_COMMAND."""
    first, _, rest = command.partition("\n")
    if len(first) <= SHOWN_COMMAND and not rest:
        return first
    return first[:SHOWN_COMMAND - 3] + "..." if len(first) > SHOWN_COMMAND - 3 else first + " ..."



def _by_reason(jobs):
    """[(reason, [jobs])] in the order each reason first comes."""
    groups = {}
    for j in jobs:
        groups.setdefault(j.reason, []).append(j)
    return list(groups.items())


def _gateway_text(name, g, routes):
    """One gateway in the summary: its state, why, and the nodes it drove at the end."""
    driven = sorted(n for n, gw in routes.items() if gw == name)
    text = f"{name} {g['state']}" + (f" ({g['why']})" if g.get("why") and g["state"] != "lost" else "")
    if g.get("losses"):
        text += f", lost {counted(g['losses'], 'time')} (last: {g['last_loss']})"
    return text + (f", driving {hostlist.fold(driven)}" if driven else ", driving no node at the end")


def persist_stop(args, log):
    """--persist-stop: ask the persisted masters (of the nodes given, else all of ours) to exit."""
    from . import controldir, ssh
    from .proc import PIPE, Child
    if args.node or args.node_file or args.profile:
        given = gather_nodes(args)
        o = given.options
        run = api.Run(["true"], given.nodes, exclude=o.exclude, ssh=o.ssh, ssh_options=o.ssh_options,
                      connect_timeout=o.connect_timeout, profiles=o.profiles)
        base = ssh.base_argv(run.ssh)
        paths = controldir.PersistentPaths(base)
        sockets = [s for node in dict.fromkeys(slot for slot in run.slots) for s in paths.of_node(node)]
    else:
        base = ssh.base_argv(ssh.SshConfig.from_strings(args.ssh or os.environ.get("CLSTR_SSH") or "ssh"))
        paths = controldir.PersistentPaths(base)
        sockets = paths.sockets()
    children = []
    for sock in sockets:
        try:
            children.append((sock, Child(ssh.exit_argv(base, sock), dict(os.environ), PIPE, PIPE, PIPE)))
        except OSError as e:
            log(f"cannot run ssh: {e.strerror}")
            break
    ended = 0
    for sock, child in children:
        child.close()
        code = child.wait(10)
        if code is None:
            from .proc import end_group
            end_group(child.pid, grace=0)
            child.wait()
        ended += code == 0
        for path in (sock, sock + ".err"):
            try:
                os.unlink(path)  # the master removes its socket; a dead one's is left for us
            except OSError:
                pass
    log(f"{counted(ended, 'persisted connection')} ended" if ended else "no persisted connection to end")
    return EXIT_OK


def failed_on(job):
    """The nodes a job ran on and failed, in the order it did (its last node if none is known)."""
    nodes = [a.node for a in job.attempts if a.outcome in (FAILED, REQUEUED)
             and a.ending not in (Ending.NEVER_RAN, Ending.BUSY)]
    return list(dict.fromkeys(nodes)) or ([job.node] if job.node else [])


def typed_flag(dest, argv):
    """The option of ``dest`` as the user typed it in ``argv`` (its last use), or None.

    Its long or short form, ``--opt=V``, ``-mV``, or a long form's abbreviation (argparse takes those).
    """
    if dest == "timeout_percent":
        dest = "timeout"
    flags = [f for a in build_parser()._actions if a.dest == dest for f in a.option_strings]
    found = None
    for token in argv:
        if token == "--":
            break
        if not token.startswith("-") or token == "-":
            continue
        word = token.split("=", 1)[0] if token.startswith("--") else token
        for flag in flags:
            if (word == flag or (flag.startswith("--") and len(word) > 3 and flag.startswith(word))
                    or (not flag.startswith("--") and not word.startswith("--") and word.startswith(flag))):
                found = word if word.startswith("--") else flag
                break
    return found


def _as_typed(e, argv):
    """The line for a bad option value, naming the option as the user typed it."""
    if e.option is None:
        return str(e)
    flag = typed_flag(e.option, argv) or checks.OPTIONS.get(e.option, (e.option,))[0]
    return f"{flag} {e.detail}"


def main(argv=None):
    log = stderr_log()
    try:
        head, inputs = templates.split_argv(sys.argv[1:] if argv is None else list(argv))
        args = build_parser().parse_args(head)
        # argparse (before Python 3.12) keeps the "--" that ends -n/-N/-J lists among the positionals
        args.job_files = [f for f in args.job_files if f != "--"]
        template_jobs = job_inputs = None
        if inputs is not None:
            template_jobs, job_inputs = jobs_from_inputs(args, inputs)
        if args.list_profiles:
            list_profiles(args, sys.stdout)
            return EXIT_OK
        if args.persist_stop:
            return persist_stop(args, log)
        habits(args, inputs)
        _refuse_together(args, inputs)
        given = gather_nodes(args)
        each = args.on_each_node is not None or bool(args.copy or args.rcopy)  # a job a node, no job list
        jobs = template_jobs if template_jobs is not None else read_jobs(args) if not each else []
        if not jobs and not each:
            for node in args.node:
                if os.path.isfile(node):  # -n h1 h2 jobs.txt: the job file was taken for a node
                    raise InputError(f"{node!r} was given to -n as a node and no job was given: to run it as a "
                                     "job file, give it before -n or after --")
        if template_jobs is None and not each and not (args.job or args.job_file or args.job_files):
            raise InputError("no jobs given (give a job file, '-' for stdin, -j CMD, -E CMD or COMMAND ::: ARGS)")
        json_out = None if args.dry_run else _open_json(args.json)
        out = None if args.dry_run else _open_out(args.stdout, sys.stdout.buffer)
        err = None if args.dry_run else _open_out(args.stderr, sys.stderr.buffer)
        run = api.Run(jobs, given.nodes, given.options.but(
            stdout=out, stderr=err, log=log, inputs=job_inputs,
            node_source=None if args.dry_run else live_nodes(args)))
        if args.dry_run:
            sys.stdout.write("".join(line + "\n" for line in run.describe(None if args.verbose else 5)))
            return EXIT_OK
        result = run.execute()
    except InputError as e:
        log(_as_typed(e, head if "head" in locals() else []))
        return EXIT_USAGE
    except KeyboardInterrupt:
        log("interrupted before any job ran")  # e.g. Ctrl-C while jobs were read from stdin
        return 128 + signal.SIGINT
    if json_out is not None and not _write_json(json_out, result, args, argv, log):
        return max(result.exit_code(args.max_exit), EXIT_FAILED)
    if result.signal == signal.SIGPIPE:
        return result.exit_code()  # our reader left (`| head`): quietly, as a shell command would
    summary(result, log, bool(args.verbose) or args.status, each_node=args.on_each_node is not None or bool(args.copy or args.rcopy),
            joblog=args.joblog)
    return result.exit_code(args.max_exit)


def _refuse_together(args, inputs):
    """InputError for options given together that cannot be."""
    if (args.copy or args.rcopy) and (args.job or args.job_file or args.job_files or inputs is not None
                                      or args.on_each_node is not None):
        raise InputError("--copy and --rcopy copy, on every node: give no jobs and no -E with them")
    if args.on_each_node is not None and (args.job or args.job_file or args.job_files):
        raise InputError("--on-each-node runs one command on every node: give no jobs with it")
    if args.json == "-" and args.stdout is None and args.output_dir is None:
        raise InputError("--json - writes to stdout: send job output elsewhere (-o FILE or --output-dir)")
    for values, flag in ((args.node, "-n"), (args.node_file, "-N")):
        if "-" in values:  # clstr -n h1 h2 - : stdin's jobs taken for a node
            raise InputError(f"'-' (jobs from stdin) was given to {flag}: give it before {flag}, or after --")


def _write_json(json_out, result, args, argv, log):
    """--json: what became of every job, written whatever happened to stdout (scripts read it).
    False if it could not be written (said)."""
    try:
        summary_json = result.to_dict(args.max_exit)
        summary_json["command_line"] = ["clstr"] + (sys.argv[1:] if argv is None else list(argv))
        json.dump(summary_json, json_out, indent=1)
        json_out.write("\n")
        json_out.flush()
    except OSError as e:
        log(f"cannot write the JSON summary: {e.strerror or e}")
        return False
    return True


def habits(args, inputs):
    """What a GNU parallel or pdsh habit, or a misplaced word, made of the command line, said in one
    line (InputError) before anything else is read."""
    for job in args.job:
        if job.strip().isdigit():
            raise InputError(f"-j {job.strip()}: -j gives clstr a job (a shell command); for {job.strip()} slots on "
                             f"every node (GNU parallel's -j), give --slots {job.strip()}")
    for flag, values in (("-n", args.node), ("-N", args.node_file)):
        for value in values:
            if any(sep in value.split() for sep in templates.SEPARATORS):
                raise InputError(f"{value!r} was given to {flag}: ':::' must be a word of its own, outside the "
                                 f"quotes, after the command: clstr {flag} NODE -- 'echo {{}}' ::: a b")
    if inputs and not (args.node or args.node_file or args.profile or args.slurm):
        options = [w for _, words in inputs for w in words if w in ("-n", "--node", "-N", "--node-file", "-p",
                                                                   "--profile", "-w")]
        if options:
            raise InputError(f"{options[0]} came after ::: and was taken as one of its values: give the options "
                             f"before the command: clstr {options[0]} NODE 'echo {{}}' ::: a b")


def _standard_fds():
    """Give a closed stdin, stdout or stderr (``2>&-``) /dev/null, so that clstr goes on without it.

    Otherwise the first file clstr opens would take its number, and Python has no sys.stderr to
    write to. A closed stderr only silences clstr's own messages.
    """
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, encoding="utf-8", errors="backslashreplace", closefd=False))


def entry():
    """Console script entry point."""
    _standard_fds()
    try:
        code = main()
    except BrokenPipeError:
        code = 128 + signal.SIGPIPE
    if code == 128 + signal.SIGPIPE:
        # stdout's reader is gone: point it at /dev/null so that the exit flush cannot complain
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)
