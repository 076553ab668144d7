"""proc.Child: a program found on the PATH of the environment it is given, looked up once."""
import os

import pytest

from clstr import proc


def output(child):
    data = b""
    while True:
        chunk = os.read(child.fds[1], 4096)
        if not chunk:
            break
        data += chunk
    child.wait()
    child.close()
    return data


def program(directory, name, text):
    path = directory / name
    path.write_text(f"#!/bin/sh\necho {text}\n")
    path.chmod(0o755)
    return path


@pytest.mark.timeout(30)
def test_program_is_found_on_the_given_path_not_ours(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    program(second, "clstr-t-hello", "from b")
    env = {"PATH": f"{first}:{second}"}
    for _ in range(2):  # the second start takes the path found by the first
        assert output(proc.Child(["clstr-t-hello"], env, proc.PIPE, proc.PIPE, proc.PIPE)) == b"from b\n"
    program(first, "clstr-t-hello", "from a")  # a PATH of its own is looked up on its own
    env_first = {"PATH": f"{first}"}
    assert output(proc.Child(["clstr-t-hello"], env_first, proc.PIPE, proc.PIPE, proc.PIPE)) == b"from a\n"


@pytest.mark.timeout(30)
def test_a_path_runs_as_given_and_a_missing_program_raises(tmp_path):
    path = program(tmp_path, "here", "here")
    assert output(proc.Child([str(path)], {"PATH": "/nonexistent"}, proc.PIPE, proc.PIPE, proc.PIPE)) == b"here\n"
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        proc.Child(["clstr-t-no-such-program"], {"PATH": str(tmp_path)}, proc.PIPE, proc.PIPE, proc.PIPE)
    assert set(os.listdir("/proc/self/fd")) == before  # its pipes closed


@pytest.mark.timeout(30)
def test_a_child_starts_with_sigterm_at_its_default_though_its_spawner_ignores_it():
    """A worker ignores SIGTERM (the supervisor stops the run); its ssh must not inherit that."""
    import signal
    old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        child = proc.Child(["sh", "-c", "grep ^SigIgn: /proc/$$/status"], dict(os.environ), proc.PIPE,
                           proc.PIPE, proc.PIPE)
    finally:
        signal.signal(signal.SIGTERM, old)
    ignored = int(output(child).split()[1], 16)
    assert not ignored & (1 << (signal.SIGTERM - 1))
