"""psutil backstop: find and end every process of this run that is still alive.

Every ssh clstr starts carries ``CLSTR_RUN=<run id>`` in its environment, so
it can be found even after its worker was killed with SIGKILL and it was
reparented, and even when it is a backgrounded ControlMaster.
"""
import ctypes
import os

MARKER = "CLSTR_RUN"
_PR_SET_CHILD_SUBREAPER = 36


def unmarked(env):
    """``env`` without the run's marker: for a process the backstop must leave, a --persist master."""
    return {k: v for k, v in env.items() if k != MARKER}


def subreaper(on):
    """Make this process the reaper of its orphaned descendants (Linux); True if it took.

    A ControlMaster that ssh -f backgrounds, or the ssh of a worker killed with
    SIGKILL, is then re-parented to us instead of init: we can find it among our
    children and wait for it at once.
    """
    try:
        # the symbols of the running program, libc's among them: no find_library, which runs ldconfig
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def has_children():
    """Whether this process has any child, running or exited and not yet waited for."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def find(run_id, descendants_only=False):
    """Processes whose environment carries this run's marker (only our descendants if asked)."""
    import psutil  # here, not at the top: a run that leaves nothing behind never needs it
    me = os.getpid()
    found = []
    if descendants_only:
        candidates = psutil.Process(me).children(recursive=True)
    else:
        candidates = psutil.process_iter()
    for p in candidates:
        if p.pid == me:
            continue
        try:
            if p.environ().get(MARKER) == run_id:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def end(procs, grace=2.0):
    """TERM, wait up to ``grace`` seconds, then KILL what is left; returns the count ended."""
    import psutil
    procs = [p for p in procs if p.is_running()]
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
    return len(procs)


def reap(run_id, grace=2.0, descendants_only=False):
    """End every leftover process of the run.

    ``descendants_only`` (we are the subreaper, so every orphan of the run is our child): with
    no child left at all there is nothing to look for.
    """
    if descendants_only and not has_children():
        return 0
    return end(find(run_id, descendants_only), grace)
