"""bench.load, small: a receiver kill -9 and a broker restart in the middle lose nothing."""

from __future__ import annotations

import pytest

from bench import load


def test_a_small_fleet_loses_and_doubles_nothing_across_both_restarts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = load.run(devices=3, seconds=9, size=(96, 64))
    printed = capsys.readouterr().out
    assert "receiver kill -9: ready again" in printed
    assert "broker restart: ready again" in printed
    assert outcome.accepted == 27
    assert (outcome.stored, outcome.lost, outcome.doubled) == (27, 0, 0)
