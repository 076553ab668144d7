"""The floor of W12 local: clstr's own job loop (clstr/remote/loop.sh) on this machine, N sessions
driven by one Python process that does nothing else: each job's frame sent ahead down a session
while the one before it runs, the marks counted, the output's lines kept. No scheduler, no
worker processes, no job records, no judging, no time limits: what clstr's design costs before
clstr does anything of its own. Not a tool: a measure, run by bench/transports.py.

    python3 bench/loopfloor.py SLOTS < jobs      # the jobs' stdout, once all ended; exit 1 if one failed

A job that fails drops every job sent ahead behind it on its session (they count as failed).
"""
import os
import selectors
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from clstr import ssh  # noqa: E402


def main():
    slots = int(sys.argv[1])
    jobs = [line.rstrip("\n") for line in sys.stdin]
    token = os.urandom(12).hex()
    loop = ssh.Loop(token)
    shell = os.environ.get("SHELL") or "/bin/sh"
    end = f"{token}:{ssh.MARK_END}:".encode()
    dropped = f"{token}:{ssh.MARK_DROPPED}".encode()  # sent ahead behind a job that failed: not run
    mark = token.encode()
    sel = selectors.DefaultSelector()
    sessions, out, failed = [], [], 0
    given = ended = 0

    def give(p, ahead):
        nonlocal given
        if given < len(jobs):
            os.write(p.stdin.fileno(), loop.ahead(jobs[given]) if ahead else loop.frame(jobs[given]))
            given += 1

    for _ in range(min(slots, len(jobs))):
        p = subprocess.Popen([shell, "-c", loop.start_line()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        sessions.append(p)
        for stream, f in ((1, p.stdout), (2, p.stderr)):
            os.set_blocking(f.fileno(), False)
            sel.register(f.fileno(), selectors.EVENT_READ, (p, stream))
        give(p, False)
        give(p, True)
    rest = {}
    while ended < len(jobs):
        for key, _ in sel.select():
            p, stream = key.data
            data = rest.pop(key.fd, b"") + os.read(key.fd, 65536)
            cut = data.rfind(b"\n") + 1
            rest[key.fd] = data[cut:]
            for line in data[:cut].splitlines():
                if stream == 1 and not line.startswith(mark):
                    out.append(line)
                elif stream == 2 and (line.startswith(end) or line == dropped):
                    ended += 1
                    failed += line != end + b"0"
                    give(p, True)
    for p in sessions:
        p.stdin.write(ssh.Loop.QUIT)
        p.stdin.close()
        p.wait()
    sys.stdout.buffer.write(b"".join(line + b"\n" for line in out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
