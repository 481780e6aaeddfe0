"""Errors a handler sees or raises.

`TerminalError` is the one users raise on purpose: it ends an invocation with a failure and no
retry. Every other exception escaping a handler is a retryable failure of the attempt.
"""

from __future__ import annotations


class TerminalError(Exception):
    """Fails the invocation (or the journaled step) for good: the runtime does not retry it."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, code={self.code})"


class CancelledError(TerminalError):
    """The invocation was cancelled: raised at the handler's current (or next) durable await.

    A TerminalError with code 409, so a handler that does not catch it fails as cancelled, and one
    that does can run compensations before it returns. When it escapes the handler, the output
    failure has cause FAILURE_CANCELLED only if the runtime did cancel this invocation; raised by
    a handler on its own (no cancel requested), it is an ordinary terminal error (FAILURE_ERROR).
    It is also what a handler sees when a call's callee was cancelled.
    """

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message, 409)


class JournalMismatchError(Exception):
    """Replay diverged from the recorded journal: the attempt stops and the invocation pauses.

    Raised into the handler so it stops; the worker has already reported the mismatch, so catching
    it changes nothing.
    """

    def __init__(self, index: int, recorded: str, actual: str) -> None:
        self.index = index
        self.recorded = recorded
        self.actual = actual
        super().__init__(f"journal mismatch at entry {index}: recorded {recorded}, handler did {actual}")


class AttemptDropped(BaseException):
    """The attempt was suspended, aborted or failed while the handler still ran: stop it.

    A BaseException so `except Exception` in user code does not swallow it.
    """


class RegistrationError(Exception):
    """The runtime rejected this worker's registration (e.g. a conflicting schema)."""


class SerdeError(Exception):
    """A value could not be serialized to, or parsed from, JSON for its declared type."""


class StreamError(TerminalError):
    """A stream write the handler may not make: retrying the same code would make it again."""


class StreamClosedError(StreamError):
    """A write to a stream after its close (`StreamWriter.close()`)."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"stream {stream!r} is closed: no more writes", 400)
        self.stream = stream


class StreamLimitError(StreamError):
    """A write beyond the invocation's stream limits (StartFrame.stream_limits); it was not sent."""

    def __init__(self, limit: str, value: float, maximum: float, message: str) -> None:
        super().__init__(message, 413)
        self.limit = limit
        self.value = value
        self.maximum = maximum
