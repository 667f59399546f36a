"""One app connection as a state machine (Hypothesis): random interleavings of partial frames,
pipelining, pauses for back-pressure, time passing, garbage and half-closes.

The model knows what a correct server answers: well-formed requests are answered in order with
the right results; a frame left unfinished for longer than the deadline (less the time we paused
reading) gets ``frame-deadline``; a half-close inside a frame gets ``truncated``; garbage gets a
codec error. Nothing else may happen, and nothing may raise.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from inmemory import CODEC_CODES, MemoryTransport, error_code
from lab import framing
from labserver.app import AppProtocol

DEADLINE_S = 2.0

values = st.text(max_size=20) | st.integers() | st.lists(st.integers(), max_size=3)
requests = st.one_of(
    st.tuples(st.just("echo"), values),
    st.tuples(st.just("reverse"), st.text(max_size=20)),
    st.tuples(st.just("search"), st.sampled_from(["ring", "tcp", "nothing"])),
)
encodings = st.sampled_from(["utf-8", "utf-16", "utf-32-be", "latin-1", "ascii"])


def expected_result(action: str, value: object) -> object:
    if action == "echo":
        return value
    if action == "reverse":
        return value[::-1]  # type: ignore[index]
    return None  # search: checked loosely


class OneConnection(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.conn = MemoryTransport(
            AppProtocol, max_content_bytes=2048, frame_deadline_s=DEADLINE_S
        )
        self.unsent = b""  # well-formed requests not yet (fully) sent
        self.expected: list[tuple[str, object]] = []  # in order
        self.frame_bytes: list[int] = []  # the size of each queued request
        self.sent_in_frame = 0  # bytes of the current request already sent
        self.frame_clock = 0.0  # deadline time used by the current request so far
        self.paused = False
        self.poisoned = False  # garbage was sent: a codec error may come
        self.deadline_due = False  # the deadline has passed with a frame unfinished
        self.eof = False

    @property
    def open(self) -> bool:
        return self.conn.closing is None and not self.eof

    @rule(request=requests, encoding=encodings)
    @precondition(lambda self: self.open)
    def queue_request(self, request: tuple[str, object], encoding: str) -> None:
        action, value = request
        wire = framing.encode_json({"action": action, "value": value}, encoding)
        self.unsent += wire
        self.frame_bytes.append(len(wire))
        self.expected.append((action, expected_result(action, value)))

    @rule(size=st.integers(1, 300))
    @precondition(lambda self: self.open and self.unsent and not self.paused)
    def send_some(self, size: int) -> None:
        chunk, self.unsent = self.unsent[:size], self.unsent[size:]
        self.conn.receive(chunk)
        # Follow frame boundaries: a request completed in this read restarts the clock.
        left = len(chunk)
        while left and self.frame_bytes:
            need = self.frame_bytes[0] - self.sent_in_frame
            if left >= need:
                left -= need
                self.frame_bytes.pop(0)
                self.sent_in_frame = 0
                self.frame_clock = 0.0
            else:
                self.sent_in_frame += left
                left = 0

    @rule(garbage=st.binary(min_size=1, max_size=40))
    @precondition(lambda self: self.open and not self.paused)
    def send_garbage(self, garbage: bytes) -> None:
        self.unsent = b""
        self.poisoned = True
        self.conn.receive(garbage)

    @rule(seconds=st.sampled_from([0.3, 0.9, 1.5]))
    def time_passes(self, seconds: float) -> None:
        if self.sent_in_frame and not self.paused:
            self.frame_clock += seconds
            if self.frame_clock >= DEADLINE_S:
                self.deadline_due = True
        self.conn.advance(seconds)

    @rule()
    @precondition(lambda self: self.open)
    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self.conn.backpressure(self.paused)

    @rule()
    @precondition(lambda self: self.open and not self.paused)
    def half_close(self) -> None:
        self.eof = True
        self.conn.receive_eof()

    @invariant()
    def replies_are_what_the_model_allows(self) -> None:
        replies = self.conn.replies()
        errors = [(i, error_code(r)) for i, r in enumerate(replies) if error_code(r)]
        if not errors:
            assert len(replies) <= len(self.expected)
        for i, reply in enumerate(replies):
            if error_code(reply):
                break
            action, result = self.expected[i]
            if action != "search":
                assert reply.value == {"result": result}
        if errors:
            index, code = errors[0]
            assert index == len(replies) - 1, "a reply after the closing error"
            assert self.conn.closing is not None
            allowed: set[str] = set()
            if self.poisoned:
                allowed |= CODEC_CODES | {"frame-deadline", "unknown-action", "bad-value"}
            if self.deadline_due:
                allowed.add("frame-deadline")
            if self.eof and (self.sent_in_frame or self.poisoned):
                allowed.add("truncated")
            assert code in allowed, (code, allowed)
        elif self.deadline_due and self.sent_in_frame:
            raise AssertionError("the deadline passed with a frame unfinished, and no error")

    @invariant()
    def closes_only_for_a_reason(self) -> None:
        if self.conn.closing is not None and not self.eof:
            assert self.poisoned or self.deadline_due


OneConnection.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestOneConnection = OneConnection.TestCase
