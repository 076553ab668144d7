# The job of one ssh session (clstr --no-pipeline, --on-each-node), run by the wrapper that
# ssh.Wrapper builds as
#     [setsid] sh -c '<this program, joined into one line>' clstr JOB WORKDIR [NAME=VALUE ...]
# with fd 3 the session's stdin: a pipe clstr holds open and never writes, and fd 4 the
# session's stderr (the wrapper's own stderr is /dev/null: the "Killed" a shell says of a child
# ended by a signal goes there, not to the job's stderr, which is fd 4 here). With setsid (where
# the node has it) the job runs in a session and process group of its own, so that its
# `kill 0` reaches itself and not the wrapper that writes its end mark. Beside it, a watcher
# reads that pipe: when it closes while the job lives (ssh was ended by a timeout, Ctrl-C or
# a killed worker, or the connection dropped), the watcher ends the job's group and its own:
# TERM, then KILL @KILL_GRACE@ s later (it ignores the TERM itself). It starts from a
# subshell that exits at once: it is nobody's child, so a job's own `wait` does not wait for
# it. The job then replaces this shell ($$ is its pid and its group's), as plain
# `ssh node 'job'` would run it: "$SHELL -c JOB", without fd 3, in WORKDIR (--workdir; "" for
# the home), the variables given after it (--env) exported to it.
# Lines end where a space may follow: joined by spaces they are the same program.
exec 2>&4 4>&-;
( { while read -r _ <&3; do :; done; kill -0 $$ && { trap "" TERM; kill -TERM -$$ 0; sleep @KILL_GRACE@;
kill -KILL -$$ 0; }; } >/dev/null 2>&1 & );
j=$1;
wd=$2;
shift 2;
if [ -n "$wd" ]; then cd -- "$wd" || exit 1; fi;
for e in "$@"; do export "$e"; done;
exec "${SHELL:-/bin/sh}" -c "$j" 3<&-
