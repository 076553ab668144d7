"""Pure tests of reading an ssh's streams (clstr/reading.py): bytes in, output events and marks out."""
import pytest

from clstr import ssh
from clstr.events import Notice, Output
from clstr.reading import STREAM_AT, Marked, Reading

T = "t0k3nt0k3nt0k3n"
WRAPPER, LOOP = ssh.Wrapper(T), ssh.Loop(T)


def reading(marks=WRAPPER, session=False):
    events = []
    return Reading(7, marks, events.append, session=session), events


def texts(events, stream=None):
    return [(e.seq, e.data) for e in events if isinstance(e, Output) and (stream is None or e.stream == stream)]


def test_marks_split_across_reads_are_found_and_taken_out():
    r, events = reading()
    p = Marked()
    r.feed(p, 1, 2, f"{T}:".encode())
    r.feed(p, 1, 2, b"s\nwarn\n")
    r.feed(p, 1, 1, b"out\nno eol")
    r.feed(p, 1, 2, f"{T}:e:3\n".encode())
    r.close(p, 1, 1)
    assert (p.started, p.end) == (True, 3)
    assert texts(events) == [(1, b"warn\n"), (1, b"out\n"), (1, b"no eol\n")]


def test_a_line_longer_than_a_chunk_is_sent_on_in_pieces_and_a_mark_behind_it_still_counts():
    r, events = reading()
    p = Marked()
    r.feed(p, 1, 2, f"{T}:s\n".encode())
    big = b"x" * (STREAM_AT + 10)
    r.feed(p, 1, 2, big[:STREAM_AT // 2])
    r.feed(p, 1, 2, big[STREAM_AT // 2:])
    pieces = texts(events)
    assert pieces and b"".join(d for _, d in pieces) == big[:len(big) - len(T) - 16]  # the tail waits
    r.feed(p, 1, 2, f"{T}:e:0\n".encode())  # the end mark right after: found, and the line ended
    assert p.end == 0 and b"".join(d for _, d in texts(events)) == big + b"\n"


def test_down_a_session_late_output_goes_to_the_job_that_ran_last_its_line_ended():
    r, events = reading(LOOP, session=True)
    r.last_seq = 1
    p = Marked()
    r.feed(p, 2, 1, f"LATE{T}:b\njob2-line\n".encode())
    r.feed(p, 2, 2, f"late err\n{T}:s\n".encode())
    assert texts(events) == [(1, b"LATE\n"), (2, b"job2-line\n"), (1, b"late err\n")]
    assert p.begun and p.started


def test_ssh_own_lines_before_the_start_are_notes_and_the_tail_tells_why():
    r, events = reading()
    p = Marked()
    r.feed(p, 1, 2, b"ssh: connect to host h port 22: Connection refused\nmotd from the login\n")
    assert [e.text for e in events if isinstance(e, Notice)] == ["ssh: ssh: connect to host h port 22: "
                                                                 "Connection refused"]
    assert texts(events) == [(1, b"motd from the login\n")]
    assert ssh.classify(p.tail) == ("refused", True)


def test_the_loop_ready_mark_names_its_runner():
    r, events = reading(LOOP, session=True)
    p = Marked()
    r.feed(p, None, 2, f"{T}:r:4242\n".encode())
    assert (p.ready, p.runner, events) == (True, 4242, [])


def test_without_marks_output_is_passed_as_it_is():
    r, events = reading(marks=None)
    p = Marked()
    r.feed(p, 3, 2, f"{T}:s\n".encode())
    assert not p.started and texts(events) == [(3, f"{T}:s\n".encode())]


@pytest.mark.parametrize("rest,mark", [(b":s", ("s", None)), (b":s:4242\n", ("s", 4242)), (b":e:3", ("e", 3)),
                                       (b":r:77", ("r", 77, False)), (b":r:77:a\n", ("r", 77, True)),
                                       (b":r", ("r", None, False)), (b":o", ("o",)), (b":d\n", ("d",)),
                                       (b":w", ("w",)), (b":r:77:b", None), (b":s:", None), (b":s:x", None),
                                       (b":e:", None)])
def test_marks_are_read_exactly(rest, mark):
    from clstr import ssh
    assert ssh._parse_mark(rest) == mark


@pytest.mark.parametrize("answer,code,ending", [
    (b"gone\n", 0, "exit"),  # the job killed its shell: its own failure
    (b"alive\n", 0, "lost"),  # its wrapper lives on: the connection died of silence
    (b"", 255, "lost"),  # the node does not answer at all
    (b"", None, "lost"),  # it ran out of time
    (b"", 0, "exit"),  # it answered without a word (no sh there): nothing to change the verdict
    (b"", 127, "exit"),
])
def test_a_node_asked_about_a_job_that_ended_without_its_end_mark(answer, code, ending):
    from clstr.events import Finished
    from clstr.judging import NO_END_MARK, after_asking
    from clstr.result import Ending
    f = Finished(0, 1, 255, 0.0, 1.0, Ending.EXIT, NO_END_MARK)
    got = after_asking(f, answer, code)
    assert got.ending.value == ending
    assert got.reason == (NO_END_MARK if ending == "exit" else "connection lost")
