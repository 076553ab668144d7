# clstr's --cleanup at the end of a run, on each node that ran something, started by any login
# shell as
#     exec sh -c '<this program, joined into one line>' clstr TOKEN WORKDIR PATH...
# WORKDIR: a directory of the run's own to remove (--workdir ...: .clstr/work/ID, with .clstr/work
# and .clstr where no other run has a directory there), or - for none. Each PATH (a
# basefile) is removed only where a file session of this run placed it (it left a hold beside it,
# .clstr-TOKEN-NAME.held-ID: see files.sh): a path that is this machine's file seen through a
# shared filesystem was never placed, and stays; nodes that share a filesystem remove it once.
# Every line below ends where a space may follow (joined by spaces it is the same program).
t=$1;
w=$2;
shift 2;
for p do
  case $p in */*) d=${p%/*};; *) d=.;; esac;
  h="$d/.clstr-$t-${p##*/}.held-";
  for f in "$h"*; do
    if [ -e "$f" ]; then rm -f -- "$h"* "$p"; break; fi;
  done;
done;
[ "$w" = - ] || rm -rf -- "$w";
[ "$w" = - ] || rmdir "${w%/*}" "${w%/*/*}" 2>/dev/null || :
