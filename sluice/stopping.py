"""Stop signals: SIGTERM and SIGINT end a `sluice` command by unwinding it, never by killing it.

SIGTERM is what systemd, Docker, Kubernetes and `kill` send; Python's default for it ends the
process on the spot, so nothing after it runs: an embedded PostgreSQL the command started would be
left running, orphaned. Here both signals raise `Stopped` in the main thread instead, and the
command's `finally` blocks run. Steps that must not be cut in half (initdb, starting or stopping the
server) run `deferred()`: a signal that arrives inside one takes effect when it ends.

`sluice serve` hands both signals to uvicorn while it serves; uvicorn drains, runs the app's
shutdown, restores the handler found here and raises the signal again, which lands here.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """A stop signal arrived; the command unwinds. A BaseException, like KeyboardInterrupt, so that
    `except Exception` clauses on the way let it pass."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class _State:
    received: int | None = None  # the first stop signal; later ones are ignored (stopping already)
    raised = False
    deferring = 0


_state = _State()


def _handle(signum: int, frame: FrameType | None) -> None:
    if _state.received is not None:
        return
    _state.received = signum
    if not _state.deferring:
        _state.raised = True
        raise Stopped(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within, SIGTERM and SIGINT raise `Stopped` (only in the main thread, where signals land)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handle) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _state.received, _state.raised, _state.deferring = None, False, 0


@contextmanager
def deferred() -> Iterator[None]:
    """A stop signal that arrives within waits until the block ends (a no-op outside stop_on_signals)."""
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
    if not _state.deferring and _state.received is not None and not _state.raised:
        _state.raised = True
        raise Stopped(_state.received)
