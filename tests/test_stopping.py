"""SIGTERM and SIGINT unwind a command (`Stopped`), at once or, inside `deferred()`, when it ends."""

from __future__ import annotations

import signal

import pytest

from sluice.stopping import Stopped, deferred, stop_on_signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_raises_stopped(sig: signal.Signals) -> None:
    with stop_on_signals(), pytest.raises(Stopped) as stopped:
        signal.raise_signal(sig)
    assert (stopped.value.signum, str(stopped.value)) == (sig, sig.name)


def test_inside_deferred_the_signal_waits_for_the_block_to_end() -> None:
    steps = []

    def step_that_must_not_be_cut() -> None:
        with deferred():
            signal.raise_signal(signal.SIGTERM)
            steps.append("the block goes on")
        steps.append("after the block")

    with stop_on_signals(), pytest.raises(Stopped) as stopped:
        step_that_must_not_be_cut()
    assert steps == ["the block goes on"]
    assert stopped.value.signum == signal.SIGTERM


def test_once_stopping_further_signals_are_ignored() -> None:
    steps = []
    with stop_on_signals():
        with pytest.raises(Stopped):
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)  # e.g. while the embedded server stops
        steps.append("the clean-up goes on")
    assert steps == ["the clean-up goes on"]


def test_the_previous_handlers_come_back() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with stop_on_signals(), pytest.raises(Stopped):
        signal.raise_signal(signal.SIGTERM)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    with stop_on_signals(), pytest.raises(Stopped):  # and the next use starts afresh
        signal.raise_signal(signal.SIGTERM)
