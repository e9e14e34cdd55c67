"""The `harnesses` fixture: controllers a test builds are stopped (and their errors raised)
when it ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import Harness


@pytest.fixture
def harnesses() -> Iterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for h in made:
        h.stop()
