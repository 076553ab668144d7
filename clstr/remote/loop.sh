# clstr's job loop: one long-lived ssh session per slot runs it, under sh, started by the
# node's login shell (any: sh, csh, fish) as
#     exec sh -c '<this program, joined into one line>' clstr TOKEN
# Every line below ends where a space may follow (';', 'do', 'then', '{', '|'), so that the
# lines joined by spaces are the same program: csh takes no newline inside quotes.
#
# Jobs come on stdin, framed: a line with the job's number of lines N, then its N lines; a
# line "q" ends the loop. Two processes: the reader owns stdin and hands each frame on to the
# runner; stdin closing without "q" (ssh was ended, the connection dropped) makes the reader
# end the session's process group: TERM, then KILL 2 s later (it ignores the TERM itself).
# The runner runs each job in a fresh "$SHELL -c", as `ssh node 'job'` would, stdin from
# /dev/null, and marks the stream with the run's token: TOKEN:r once ready (stderr), TOKEN:s
# before a job (stderr), then after it TOKEN:o on stdout and TOKEN:e:STATUS on stderr.
# The job is a child: its exit, exec, cd or export end with it. The runner's own stderr is
# /dev/null (the job's and the marks go to fd 4), and the job runs from a subshell (which sh
# execs, no extra fork): sh's "Terminated" for a job killed by a signal is not the job's
# output. The runner outlives a TERM, HUP or INT (a job's `kill $PPID` would otherwise leave
# the session waiting for an end mark that never comes); its children get them back at their
# defaults, and the reader's cleanup KILLs it. No `!` anywhere (csh).
t=$1;
n1=$(printf '\nx');
n1=${n1%x};
{
  while IFS= read -r n; do
    case $n in q) echo q; exit 0;; esac;
    echo "$n";
    while [ "$n" -gt 0 ] && IFS= read -r l; do printf '%s\n' "$l"; n=$((n - 1)); done;
  done;
  trap '' TERM; kill -TERM 0; sleep 2; kill -KILL 0;
} | {
  exec 4>&2 2>/dev/null;
  trap : TERM HUP INT;
  echo "$t:r" >&4;
  while IFS= read -r n; do
    case $n in q) exit 0;; esac;
    j=; s=;
    while [ "$n" -gt 0 ] && IFS= read -r l; do j=$j$s$l; s=$n1; n=$((n - 1)); done;
    echo "$t:s" >&4;
    ("${SHELL:-/bin/sh}" -c "$j" </dev/null 2>&4 4>&-);
    c=$?;
    echo "$t:o"; echo "$t:e:$c" >&4;
  done;
}
