"""sudo's password, asked at the terminal (--sudo): once, without echo, only when a node asks.

An edge: it opens /dev/tty (as sudo and ssh do), so that a run whose stdin and stdout are
pipes still asks its user; with no terminal there is no password (the nodes that ask fail,
saying so). It returns while the run goes on stopping: a Ctrl-C at the prompt stops the run.
"""
import os
import select
import termios

POLL = 0.2  # seconds between looks at whether the run is stopping while the prompt waits


def terminal(node, stopped=lambda: False):
    """The password typed at the controlling terminal for sudo on ``node`` (and every node that
    asks after it), without echo; None where there is no terminal, nothing was typed (Enter,
    Ctrl-D) or the run is stopping."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        try:
            old = termios.tcgetattr(fd)
        except termios.error:
            return None
        quiet = list(old)
        quiet[3] &= ~(termios.ECHO | termios.ECHONL)
        termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
        try:
            os.write(fd, f"[clstr] sudo on {node} asks for a password (sent to the nodes that ask): ".encode())
            typed = _line(fd, stopped)
        finally:
            termios.tcsetattr(fd, termios.TCSAFLUSH, old)
            os.write(fd, b"\n")
    finally:
        os.close(fd)
    if typed is None:
        return None
    text = typed.decode("utf-8", "surrogateescape").rstrip("\r\n")
    return text or None


def _line(fd, stopped):
    """One line read from ``fd`` (bytes), or None once the run is stopping or at the end."""
    data = b""
    while not data.endswith(b"\n"):
        if stopped():
            return None
        if not select.select([fd], [], [], POLL)[0]:
            continue
        chunk = os.read(fd, 1024)
        if not chunk:
            return data or None
        data += chunk
    return data
