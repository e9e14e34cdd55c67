"""One shape for every reliability scenario: a seed, N trials, verdicts from the world, JSON.

A reliability figure ("50 trials, 0 lost") is only worth something if a failing trial can be
replayed.  So every scenario draws all of its randomness from one `random.Random(seed)`,
prints the seed first, and records it with every trial; `--seed` replays a campaign and
`--trial K` one trial of it (each trial gets its own derived seed, so trial K does not depend
on what trials before it drew).  Verdicts come from observing libvirt, RBD and volume
contents directly (`bench.common.world`), never from volctl's own status.

`finish()` writes `reliability/results/<name>-<utc>.json` and `<name>-latest.json` with the
environment (`bench.common.env`), prints the table, and returns the process exit code: 0 only
if every trial met every goal.  The runs quoted in RESULTS.md are copied to `results/real/`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common.env import REPO, environment
from bench.common.report import fmt, median, percentile, table

# VOLCTL_RELIABILITY_RESULTS redirects the JSON (the smoke tests write into their tmp dir)
RESULTS_DIR = Path(
    os.environ.get("VOLCTL_RELIABILITY_RESULTS", str(REPO / "reliability" / "results"))
)


def add_campaign_args(parser: argparse.ArgumentParser, *, trials: int) -> None:
    """The options every scenario has: --trials, --seed, --trial, --smoke."""
    parser.add_argument("--trials", type=int, default=trials, help=f"default {trials}")
    parser.add_argument("--seed", type=int, default=None, help="replay (default: random)")
    parser.add_argument("--trial", type=int, default=None, help="run only trial K of --seed")
    parser.add_argument("--smoke", action="store_true", help="1 small trial (the test suite)")


def trial_seed(seed: int, k: int) -> int:
    """Trial k's own seed: replaying trial k needs only (seed, k)."""
    return random.Random(f"{seed}:{k}").getrandbits(63)


@dataclass
class Trial:
    """One trial's record: its seed, what was done to the world, and what the world showed."""

    k: int
    seed: int
    rng: random.Random
    started: float = field(default_factory=time.monotonic)
    facts: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.failures.append(why)

    def row(self) -> dict[str, Any]:
        return {
            "trial": self.k,
            "seed": self.seed,
            "ok": not self.failures,
            "seconds": round(time.monotonic() - self.started, 2),
            **self.facts,
            "failures": self.failures,
        }


@dataclass
class Campaign:
    name: str  # "r1_crash"
    params: dict[str, Any]
    seed: int
    goals: dict[str, str] = field(default_factory=dict)  # figure -> goal, for RESULTS.md
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    # the scenario's figures from its rows, recomputed for every partial and the final record
    summarize: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None

    @classmethod
    def from_args(cls, name: str, args: argparse.Namespace, params: dict[str, Any]) -> Campaign:
        seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(31)
        print(f"{name}: seed {seed} (replay: --seed {seed} [--trial K])", flush=True)
        return cls(name=name, params={**params, "trials": args.trials}, seed=seed)

    def __post_init__(self) -> None:
        self.env = environment()

    def trials(self, n: int, only: int | None = None) -> Iterator[Trial]:
        """Yield each trial with its own seeded RNG; its row is recorded when it is done."""
        for k in [only] if only is not None else range(n):
            s = trial_seed(self.seed, k)
            t = Trial(k=k, seed=s, rng=random.Random(s))
            print(f"{self.name}: trial {k} (seed {self.seed}, trial seed {s})", flush=True)
            completed = False
            try:
                yield t
                completed = True  # resumed: the loop body finished this trial
            finally:
                if not completed:  # the loop body raised (or was interrupted) in this trial
                    t.fail("the trial did not complete (an exception or an interrupt)")
                self.rows.append(t.row())
                state = "ok" if not t.failures else "FAILED: " + "; ".join(t.failures)
                print(f"{self.name}: trial {k} {state}", flush=True)
                self.write_partial()

    def write_partial(self, results_dir: Path | None = None) -> Path:
        """`<name>-partial.json` after every trial: a campaign stopped at a deadline (or
        killed) still leaves every finished trial's record behind."""
        out_dir = results_dir or RESULTS_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.name}-partial.json"
        doc = {**self.document(), "partial": True}
        path.write_text(json.dumps(doc, indent=2, default=str))
        return path

    def document(self) -> dict[str, Any]:
        """The campaign's record as it stands: command, seed, params, goals, rows."""
        if self.summarize is not None:
            self.summary.update(self.summarize(self.rows))
        argv = [Path(sys.executable).name, "-m", f"reliability.{self.name}", *sys.argv[1:]]
        if "--seed" not in sys.argv:
            argv += ["--seed", str(self.seed)]
        return {
            "scenario": self.name,
            "command": " ".join(shlex.quote(a) for a in argv),
            "seed": self.seed,
            "params": self.params,
            "goals": self.goals,
            "environment": {**self.env, "load_avg_at_end": list(os.getloadavg())},
            "ok": bool(self.rows) and all(r.get("ok") for r in self.rows),
            "summary": self.summary,
            "rows": self.rows,
            "notes": self.notes,
        }

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def finish(self, columns: list[tuple[str, str]], results_dir: Path | None = None) -> int:
        out_dir = results_dir or RESULTS_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        self.summary.setdefault("trials", len(self.rows))
        self.summary.setdefault("trials_ok", sum(1 for r in self.rows if r.get("ok")))
        doc = self.document()
        ok = bool(doc["ok"])
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"{self.name}-{stamp}.json"
        text = json.dumps(doc, indent=2, default=str)
        path.write_text(text)
        (out_dir / f"{self.name}-latest.json").write_text(text)
        print()
        print(f"== {self.name} ==  {doc['command']}")
        print(table(self.rows, columns))
        for k, v in self.summary.items():
            goal = self.goals.get(k)
            print(f"  {k}: {fmt(v)}" + (f"   (goal: {goal})" if goal else ""))
        for n in self.notes:
            print(f"  * {n}")
        print(f"  results: {path}")
        return 0 if ok else 1


__all__ = ["Campaign", "Trial", "add_campaign_args", "median", "percentile", "trial_seed"]
