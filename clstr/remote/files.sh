# clstr's file session: the files a slot's jobs send and bring back (--transferfile, --return,
# --basefile, --workdir), over one ssh session of their own beside the job loop (no job writes
# here, so the stream stays clean), started by any login shell as
#     exec sh -c '<this program, joined into one line>' clstr TOKEN
# Every line below ends where a space may follow: joined by spaces they are the same program
# (csh takes no newline inside quotes). No `!` anywhere, no `#` but at the start of a line.
#
# Requests come on stdin, a line each; a path (never holding a line break) is on a line of its own:
#   d N, then N paths      make these directories (and their parents)
#   s SIZE MODE, a path    SIZE bytes follow, then a line "e": written to the path, its directory
#                          made, given the permission bits MODE (octal) less the umask, as rsync
#                          without -p does (chmod only when they differ from a new file's); a
#                          partial file is removed: never half there
#   b SIZE MODE, a path    a basefile: the same, through a temporary name moved into place (slots
#                          of one node may send it at once)
#   r, then a path         bring the path back: the answer is "TOKEN:f SIZE MODE" (both read
#                          from ls -lnL, MODE as it shows it) and its bytes
#   c N, then N paths      remove these when the session ends, whatever way (--cleanup)
#   x N, then N paths      remove these now
#   q                      end (what c named is removed)
# It says "TOKEN:r" once ready (what a login printed before it is not its). Each request but q
# is answered by one line, "TOKEN:k" or "TOKEN:n WHY" (WHY: the tool's own
# message). Bytes are read with `head -c`, which must read no further than asked (GNU coreutils
# and BusyBox do); a file that cannot be written is still read to its end, so that the stream
# stays in step. When stdin closes without q (ssh ended: a timeout, Ctrl-C, a dropped
# connection), a file half received is removed, and so is what c named.
t=$1;
nl=$(printf '\nx');
nl=${nl%x};
part=;
gone=;
bye() { [ -n "$part" ] && rm -f -- "$part"; if [ -n "$gone" ]; then set -f; IFS=$nl; rm -rf -- $gone; fi; exit 0; };
trap bye HUP TERM INT PIPE;
say() { echo "$t:$1"; };
um=$(umask);
plain=$((0666 & ~0$um));
say r;
while IFS=' ' read -r k a1 a2; do
  case $k in
    q) bye;;
    d) i=0; e=; while [ $i -lt "$a1" ] && IFS= read -r p; do
         i=$((i + 1)); [ -d "$p" ] || e=$(mkdir -p -- "$p" 2>&1) || break; done;
       if [ -z "$e" ]; then say k; else say "n $e"; fi;;
    s|b) IFS= read -r p || bye;
      case $p in */*) d=${p%/*};; *) d=.;; esac;
      e=;
      [ -d "$d" ] || e=$(mkdir -p -- "$d" 2>&1);
      if [ "$k" = b ]; then w="$d/.clstr-$$.part"; else w=$p; fi;
      part=$w;
      if [ -z "$e" ]; then
        e=$(head -c "$a1" | { cat >"$w" || { cat >/dev/null; exit 1; }; } 2>&1) || e="${e:-cannot write}";
      else
        head -c "$a1" >/dev/null;
      fi;
      IFS= read -r end || bye;
      [ "$end" = e ] || bye;
      m=$((0$a2 & ~0$um));
      if [ -z "$e" ] && [ "$m" -ne "$plain" ]; then e=$(chmod "$(printf %o "$m")" -- "$w" 2>&1); fi;
      if [ -z "$e" ] && [ "$k" = b ]; then e=$(mv -f -- "$w" "$p" 2>&1); fi;
      if [ -z "$e" ]; then part=; say k; else rm -f -- "$w"; part=; say "n $e"; fi;;
    r) IFS= read -r p || bye;
      if [ -f "$p" ] && [ -r "$p" ]; then
        m=$(ls -lnL -- "$p"); set -f; set -- $m; set +f;
        if [ "$5" -ge 0 ] 2>/dev/null; then say "f $5 $1"; head -c "$5" <"$p"; else say "n not a readable file"; fi;
      elif [ -e "$p" ]; then
        say "n not a readable file";
      else
        say "n no such file";
      fi;;
    c) i=0; while [ $i -lt "$a1" ] && IFS= read -r p; do gone="$gone$p$nl"; i=$((i + 1)); done; say k;;
    x) i=0; xs=; while [ $i -lt "$a1" ] && IFS= read -r p; do xs="$xs$p$nl"; i=$((i + 1)); done;
       [ -z "$xs" ] || (set -f; IFS=$nl; rm -rf -- $xs); say k;;
    *) say "n bad request"; bye;;
  esac;
done;
bye
