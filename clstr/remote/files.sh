# clstr's file session: the files a slot's jobs send and bring back (--transferfile, --return,
# --basefile, --workdir), over one ssh session of their own beside the job loop (no job writes
# here, so the stream stays clean), started by any login shell as
#     exec sh -c '<this program, joined into one line>' clstr TOKEN ID
# Every line below ends where a space may follow: joined by spaces they are the same program
# (csh takes no newline inside quotes). No `!` anywhere, no `#` but at the start of a line.
#
# ID names this session among all of the run's (on every node). MARK is the name of a file
# clstr made beside the file's place on its own machine for this request (- for none): found
# beside the path here, the node sees clstr's machine's filesystem (NFS, or the same machine),
# so the path here is the very file there, and it is never written over nor removed.
#
# Requests come on stdin, a line each; a path (never holding a line break) is on a line of its own:
#   d N, then N paths      make these directories (and their parents)
#   s SIZE MODE MARK HOLD TIME, a path
#                          SIZE bytes follow, then a line "e": written to a temporary name beside
#                          the path (its directory made), given the permission bits MODE (octal)
#                          less the umask, as rsync without -p does (TIME, not -: --preserve, MODE
#                          as it is and TIME its modification time, touch -t in UTC), then moved into place: never
#                          half there. Answer "k", or "k same" where MARK says the path is the
#                          file itself (the bytes are dropped). HOLD h: leave a hold beside it
#                          (.clstr-TOKEN-NAME.held-ID), which removing it asks for (below)
#   b ...                  a basefile: the same
#   r MARK, then a path    bring the path back: "TOKEN:h" where MARK says it is already there;
#                          else "TOKEN:f SIZE MODE MTIME" (from ls -lnL, MODE as it shows it; MTIME
#                          from date -r, epoch seconds, or - where date cannot tell), exactly
#                          SIZE bytes, then "TOKEN:k", or "TOKEN:n changed" if the file changed
#                          while it was read (a shorter file is padded: the stream stays in step)
#   c N, then N lines      remove these when the session ends, whatever way (--cleanup): "pPATH"
#                          a file this session placed, "rMARK/PATH" a file a job made (not
#                          where MARK says the path is the file there); then the directories
#                          the session made for the files it placed, where they are empty
#   x N, then N lines      remove these now (the same lines)
#   q                      end (what c named is removed)
# A placed file is removed only with this session's hold, and only if no other session of the
# run holds it (nodes sharing a filesystem send the same file to one place; the last one to be
# done with it removes it). It says "TOKEN:r" once ready (what a login printed before it is not
# its). Each request but q is answered by one line, "TOKEN:k" or "TOKEN:n WHY" (WHY: the tool's
# own message). Bytes are read by `rd`: GNU dd in blocks of 1 MiB where the node has it (sshd then
# keeps small buffers: measured, a third of a copy's CPU on the node), else `head -c` (8 KiB at a
# time); each reads no further than asked (GNU coreutils and BusyBox do). A file that cannot be
# written is still read to its end, so that the stream stays in step. When stdin closes without q (ssh ended: a timeout, Ctrl-C, a dropped
# connection), a file half received is removed, and so is what c named.
t=$1;
id=$2;
nl=$(printf '\nx');
nl=${nl%x};
part=;
gone=;
made=;
dir() { case $1 in */*) d=${1%/*};; *) d=.;; esac; };
drop() {
  rs=; set -f; IFS=$nl;
  for l in $1; do
    IFS=' '; p=${l#?};
    case $l in
      r*) rs="$rs$p$nl";;
      *) dir "$p"; h="$d/.clstr-$t-${p##*/}.held-";
         if [ -e "$h$id" ]; then
           rs="$rs$h$id$nl"; o=; set +f;
           for f in "$h"*; do [ "$f" = "$h$id" ] || [ ! -e "$f" ] || o=1; done;
           set -f; [ -n "$o" ] || rs="$rs$p$nl";
         fi;;
    esac;
    IFS=$nl;
  done;
  IFS=' '; set +f;
  [ -z "$rs" ] || (set -f; IFS=$nl; rm -f -- $rs);
  if [ -n "$made" ]; then
    kept=; set -f; IFS=$nl;
    for dn in $made; do rmdir -- "$dn" 2>/dev/null || kept="$kept$dn$nl"; done;
    IFS=' '; set +f; made=$kept;
  fi;
};
mkd() {
  dn=$1; dm=;
  while :; do
    case $dn in ''|.|/) break;; esac;
    [ -d "$dn" ] && break;
    dm="$dm$dn$nl";
    case $dn in */*) dn=${dn%/*};; *) dn=;; esac;
  done;
  e=$(mkdir -p -- "$1" 2>&1) && made="$dm$made";
};
bye() { [ -n "$part" ] && rm -f -- "$part"; [ -z "$gone" ] || drop "$gone"; exit 0; };
if dd if=/dev/null bs=1048576 count=0 iflag=count_bytes,fullblock 2>/dev/null; then
  rd() { dd bs=1048576 count="$1" iflag=count_bytes,fullblock 2>/dev/null; };
else
  rd() { head -c "$1"; };
fi;
trap bye HUP TERM INT PIPE;
say() { echo "$t:$1"; };
um=$(umask);
plain=$((0666 & ~0$um));
say r;
while IFS=' ' read -r k a1 a2 a3 a4 a5; do
  case $k in
    q) bye;;
    d) i=0; e=; while [ $i -lt "$a1" ] && IFS= read -r p; do
         i=$((i + 1)); [ -d "$p" ] || e=$(mkdir -p -- "$p" 2>&1) || break; done;
       if [ -z "$e" ]; then say k; else say "n $e"; fi;;
    s|b) IFS= read -r p || bye;
      dir "$p";
      e=; same=;
      [ -d "$d" ] || mkd "$d";
      if [ -z "$e" ] && [ -n "$a3" ] && [ "$a3" != - ] && [ -e "$d/$a3" ]; then same=1; fi;
      if [ -z "$e" ] && [ -z "$same" ] && [ -d "$p" ]; then e="$p: Is a directory"; fi;
      w="$d/.clstr-$t-$id.part";
      if [ -z "$e" ] && [ -z "$same" ]; then
        part=$w;
        e=$(rd "$a1" | { cat >"$w" || { cat >/dev/null; exit 1; }; } 2>&1) || e="${e:-cannot write}";
      else
        rd "$a1" >/dev/null;
      fi;
      IFS= read -r end || bye;
      [ "$end" = e ] || bye;
      if [ -n "$same" ]; then
        say "k same";
      else
        m=$((0$a2 & ~0$um));
        case $a5 in ''|-) ;; *) m=$((0$a2));; esac;
        if [ -z "$e" ] && [ "$m" -ne "$plain" ]; then e=$(chmod "$(printf %o "$m")" -- "$w" 2>&1); fi;
        case $a5 in ''|-) ;; *) [ -n "$e" ] || e=$(TZ=UTC0 touch -c -t "$a5" -- "$w" 2>&1);; esac;
        if [ -z "$e" ]; then e=$(mv -f -- "$w" "$p" 2>&1); fi;
        if [ -z "$e" ]; then
          part=;
          if [ "$a4" = h ]; then { : >"$d/.clstr-$t-${p##*/}.held-$id"; } 2>/dev/null; fi;
          say k;
        else
          [ -z "$part" ] || rm -f -- "$w"; part=; say "n $e";
        fi;
      fi;;
    r) IFS= read -r p || bye;
      dir "$p";
      if [ -n "$a1" ] && [ "$a1" != - ] && [ -e "$d/$a1" ]; then
        say h;
      elif [ -f "$p" ] && [ -r "$p" ]; then
        m=$(ls -lnL -- "$p"); set -f; set -- $m; set +f;
        if [ "$5" -ge 0 ] 2>/dev/null; then
          mt=$(date -r "$p" +%s 2>/dev/null) || mt=-;
          say "f $5 $1 ${mt:--}";
          cat -- "$p" /dev/zero 2>/dev/null | rd "$5";
          if [ "$(ls -lnL -- "$p" 2>&1)" = "$m" ]; then say k; else say "n changed"; fi;
        else
          say "n not a readable file";
        fi;
      elif [ -d "$p" ]; then
        say "n a directory (--rcopy brings one back by rsync, where both ends have it)";
      elif [ -e "$p" ]; then
        say "n not a readable file";
      else
        say "n no such file";
      fi;;
    c|x) i=0; xs=; while [ $i -lt "$a1" ] && IFS= read -r l; do
         i=$((i + 1));
         case $l in
           r*) mk=${l#r}; p=${mk#*/}; mk=${mk%%/*}; dir "$p";
               if [ -z "$mk" ] || [ "$mk" = - ] || [ ! -e "$d/$mk" ]; then xs="${xs}r$p$nl"; fi;;
           *) xs="$xs$l$nl";;
         esac;
       done;
       if [ "$k" = c ]; then gone="$gone$xs"; else drop "$xs"; fi; say k;;
    *) say "n bad request"; bye;;
  esac;
done;
bye
