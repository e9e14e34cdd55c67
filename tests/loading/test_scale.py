"""The loader stays fast on the planner benchmark's scale (tens of thousands of documents)."""

from __future__ import annotations

import time

from reconciler.loading import load_texts

from .docs import BASE, attachment, host, join, vm, volume


def test_twenty_thousand_documents_load_in_seconds() -> None:
    parts = [BASE, *(host(f"h{i}") for i in range(50))]
    parts += [vm(f"vm{i}", f"  antiAffinityGroup: g{i % 7}\n") for i in range(12000)]
    parts += [volume(f"vol{i}", str(1 + i % 100)) for i in range(4000)]
    parts += [attachment(f"at{i}", f"vol{i}", f"vm{i}") for i in range(4000)]
    text = join(*parts)
    started = time.process_time()  # CPU time: other jobs on the machine do not count
    state = load_texts([("big.yaml", text)])
    spent = time.process_time() - started
    assert len(state.vms) == 12000
    assert len(state.attachments) == 4000
    assert state.hosts["h49"].pmid == 45  # name order: h0, h1, h10, ..., h49 is 45th
    assert spent < 8, f"loading 20k documents took {spent:.1f}s of CPU"
