"""The campaign skeleton records what really happened in each trial.

A trial whose body raised must be recorded as failed: the generator's `finally` runs on close,
and once recorded such a trial as ok (found by R7)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from reliability.common.campaign import Campaign, trial_seed


def _campaign() -> Campaign:
    args = argparse.Namespace(seed=42, trials=3, trial=None, smoke=False)
    return Campaign.from_args("r0_test", args, {})


def _run_until_trial_1_raises(c: Campaign) -> None:
    for t in c.trials(3):
        if t.k == 1:
            raise RuntimeError("boom")


def test_a_trial_that_raises_is_recorded_failed(tmp_path: Path) -> None:
    c = _campaign()
    with pytest.raises(RuntimeError):
        _run_until_trial_1_raises(c)
    assert [r["ok"] for r in c.rows] == [True, False]
    assert "did not complete" in c.rows[1]["failures"][0]
    assert c.finish([("trial", "trial")], results_dir=tmp_path) == 1
    doc = json.loads((tmp_path / "r0_test-latest.json").read_text())
    assert doc["ok"] is False
    assert doc["seed"] == 42


def test_trial_k_replays_with_the_same_seed_alone() -> None:
    whole = [(t.k, t.rng.random()) for t in _campaign().trials(3)]
    alone = [(t.k, t.rng.random()) for t in _campaign().trials(3, only=2)]
    assert alone == [whole[2]]
    assert trial_seed(42, 2) != trial_seed(42, 1)
