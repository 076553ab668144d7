# The job loop's reader (see loop.sh), run as
#     [setsid] sh -c '<this program, joined into one line>' clstr TOKEN GROUP
# It owns the session's stdin and hands each frame on to the runner; it never runs a job.
# Two lines are for it alone: "@PING@PID", sent by clstr while a job runs, asks whether the
# runner PID still lives (a job may have killed it with SIGKILL: its end mark would never
# come); "@QUIT@" ends the loop. "@SECRET@" and the line after it (sudo's password, --sudo)
# go to the runner as they are, written by printf (a builtin: never an argv). "@RECALL@PID"
# signals the runner that the frame sent ahead ("@AHEAD@", passed on) goes back, and says so on
# stderr (TOKEN:@RECALLED@; loop.sh says why that tells whether it will). When stdin closes without "@QUIT@" (ssh was ended by a
# timeout, Ctrl-C or a killed worker, or the connection dropped), or the runner is gone
# (TOKEN:@LOOP_GONE@ on stderr then), it ends GROUP, the runner's process group and its
# job's: TERM, then KILL @KILL_GRACE@ s later from a process that holds none of the session's
# streams (the reader ignores the TERM itself, and exits at once: the session closes as soon
# as the job is gone, not a grace later).
t=$1;
g=$2;
trap '' PIPE;
while IFS= read -r n; do
  case $n in
    @QUIT@) echo @QUIT@ 2>/dev/null; exit 0;;
    @PING@*) kill -0 "${n#@PING@}" 2>/dev/null && continue; echo "$t:@LOOP_GONE@" >&2; break;;
    @SECRET@) IFS= read -r l; printf '%s\n' "$n" "$l" 2>/dev/null && continue; echo "$t:@LOOP_GONE@" >&2; break;;
    @AHEAD@) echo "$n" 2>/dev/null && continue; echo "$t:@LOOP_GONE@" >&2; break;;
    @RECALL@*) kill -USR1 "${n#@RECALL@}" 2>/dev/null; echo "$t:@RECALLED@" >&2; continue;;
  esac;
  echo "$n" 2>/dev/null || { echo "$t:@LOOP_GONE@" >&2; break; };
  while [ "$n" -gt 0 ] && IFS= read -r l; do printf '%s\n' "$l" 2>/dev/null; n=$((n - 1)); done;
done;
exec >&-;
trap '' TERM;
kill -TERM $g;
( sleep @KILL_GRACE@; kill -KILL $g ) </dev/null >/dev/null 2>&1 &
