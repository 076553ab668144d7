"""Questions a slot asks about its node out of band, each by a short process of its own: the
node's ProxyJump host (``ssh -G``, nothing sent; looked up once), and whether a job's wrapper
still lives there (``ssh.alive_line``, over a fresh connection). Each is bounded in time."""
import os
import select
import time

from . import ssh
from .deadlines import start_bound
from .proc import PIPE, Child, end_group

UNKNOWN = object()


class NodeQuestions:
    """``reach``: the node's transport; ``env``: the environment of what it starts; ``devnull``: an
    open /dev/null."""

    def __init__(self, reach, env, connect_timeout, devnull):
        self.reach = reach
        self.env = env
        self.connect_timeout = connect_timeout
        self.devnull = devnull
        self.jump = UNKNOWN  # the node's ProxyJump host, looked up after its first refused handshake

    def jump_host(self):
        """The node's ProxyJump host, from ``ssh -G`` with the run's options (looked up once; None
        for none)."""
        if self.jump is not UNKNOWN:
            return self.jump
        self.jump = None
        argv = self.reach.config_argv()
        if argv is None:  # a transport with no ssh config to look in: no jump host
            return None
        try:
            out, _ = self.output_of(argv, ssh.CONFIG_WAIT)
        except OSError:
            return None
        self.jump = ssh.jump_host(out.decode("utf-8", "replace"))
        return self.jump

    def alive(self, pid):
        """(what the node said, ssh's exit status or None if out of time) of ssh.alive_line."""
        argv = self.reach.argv(ssh.alive_line(pid), None, cleanup=False)
        try:
            return self.output_of(argv, start_bound(self.connect_timeout))
        except OSError:
            return b"", None

    def output_of(self, argv, wait):
        """(stdout, exit status) of a short ssh run here, read for at most ``wait`` seconds (then
        ended: its status None); OSError if it cannot start."""
        child = Child(argv, self.env, self.devnull, PIPE, self.devnull)
        fd, deadline, out = child.fds[1], time.monotonic() + wait, b""
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    end_group(child.pid, grace=0)
                    child.wait()
                    return out, None
                data = os.read(fd, 65536)
                if not data:
                    return out, child.wait()
                out += data
        finally:
            child.close()
