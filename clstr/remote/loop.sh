# clstr's job loop: one long-lived ssh session per slot runs it, under sh, started by the
# node's login shell (any: sh, csh, fish) as
#     exec sh -c '<this program, joined into one line>' clstr TOKEN '<reader.sh, joined>' WORKDIR [NAME=VALUE ...]
# Every line below ends where a space may follow (';', 'do', 'then', '{', '|'), so that the
# lines joined by spaces are the same program: csh takes no newline inside quotes. No `!`
# anywhere (csh), and no `#` but at the start of a line (joining drops those lines).
#
# Jobs come on stdin, framed: a line with the job's number of lines N, then its N lines; a
# line "@QUIT@" ends the loop. Two processes: the reader (reader.sh) owns stdin and hands
# each frame on to the runner below. The reader runs in a process group of its own (setsid,
# where the node has it and this shell leads the session's group, as sshd makes it), so that
# a job's `kill 0` or `kill -9 0` cannot reach it; it is told that group (-PID, or 0 where it
# shares it) to end when its stdin closes.
# The runner runs each job in a fresh "$SHELL -c", as `ssh node 'job'` would, stdin from
# /dev/null, in WORKDIR (--workdir; "" for the home), the variables given after it (--env)
# exported to it, and marks the streams with the run's token: TOKEN:@READY@:PID once ready
# (stderr; PID is the runner's, which the reader checks lives when clstr pings it), then for
# each job TOKEN:@BEGIN@ on stdout (output before it is an earlier job's background
# process's), TOKEN:@START@ on stderr, the job, TOKEN:@STDOUT_END@ on stdout and
# TOKEN:@END@:STATUS on stderr. The job is a child: its exit, exec, cd or export end with it.
# The runner's own stderr is /dev/null (the job's and the marks go to fd 4): sh's "Terminated"
# for a job killed by a signal is not the job's output. The job is a simple command of the
# runner (which sh starts by vfork where it can: dash does, a fork's copy of its pages saved a
# job), or, with a work directory or variables to give it, it runs from a subshell that sh execs. This shell and the runner outlive a TERM, HUP or INT (a
# job's `kill 0` or `kill $PPID`); their children get them back at their defaults, and the
# reader's cleanup KILLs them. A frame "@SECRET@" and a line (--sudo: sudo's password, sent only
# to a node whose sudo asked for it) is kept in a variable, and from then on every job finds it
# on its fd 5, piped by printf (a builtin: never an argv, an environment or a file); sudo.py.
# A line "@AHEAD@" makes the frame after it one sent ahead (session.py): the runner starts it the
# moment the job before it ended with status 0, with no word from clstr between, and drops it
# (TOKEN:@DROPPED@ on stderr) if that job failed or a recall came. A recall is a USR1 from the
# reader, caught only from before a job's start mark to after its end mark: POSIX shells run a
# trap only once the foreground job has ended, so a recall the reader signalled before that end
# mark (it says TOKEN:@RECALLED@ after signalling) always drops the frame sent ahead. The runner
# first signals itself: where USR1 was ignored when sh started (a shell may not trap it then),
# its ready mark lacks ":@AHEAD@" and clstr sends it nothing ahead.
t=$1;
rd=$2;
wd=$3;
shift 3;
n1=$(printf '\nx');
n1=${n1%x};
trap : TERM HUP INT;
g=0;
kill -0 -$$ 2>/dev/null && g=-$$;
ss=;
[ "$g" = 0 ] || { command -v setsid >/dev/null 2>&1 && ss=setsid; };
rj() {
  if [ -z "$wd$*" ]; then "${SHELL:-/bin/sh}" -c "$j" </dev/null 2>&4 4>&-; return; fi;
  (if [ -n "$wd" ]; then cd -- "$wd" 2>&4 || exit 1; fi; for e in "$@"; do export "$e"; done;
  exec "${SHELL:-/bin/sh}" -c "$j" </dev/null 2>&4 4>&-);
};
$ss sh -c "$rd" clstr "$t" "$g" | {
  exec 4>&2 2>/dev/null;
  trap : TERM HUP INT;
  me=$(exec sh -c 'echo $PPID');
  u=;
  trap 'u=:@AHEAD@' USR1;
  kill -USR1 "$me" 2>/dev/null;
  echo "$t:@READY@:$me$u" >&4;
  pw=;
  c=0; a=; cx=;
  trap '' USR1;
  while IFS= read -r n; do
    case $n in @QUIT@) exit 0;; @SECRET@) IFS= read -r pw; continue;; @AHEAD@) a=1; continue;; esac;
    j=; s=;
    while [ "$n" -gt 0 ] && IFS= read -r l; do j=$j$s$l; s=$n1; n=$((n - 1)); done;
    if [ -n "$a" ]; then
      a=;
      case $c$cx in 0) ;; *) cx=; echo "$t:@DROPPED@" >&4; continue;; esac;
    fi;
    cx=;
    trap 'cx=1' USR1;
    echo "$t:@BEGIN@";
    echo "$t:@START@" >&4;
    if [ -z "$pw" ]; then rj "$@"; else printf '%s\n' "$pw" | { exec 5<&0; rj "$@"; }; fi;
    c=$?;
    echo "$t:@STDOUT_END@"; echo "$t:@END@:$c" >&4;
    trap '' USR1;
  done;
}
