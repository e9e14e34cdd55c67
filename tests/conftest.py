"""Session fixtures for tests on the real stack: one lab per session, a fresh pool per test.

`lab` brings a lab up (real Ceph + libvirtd hosts, see docs/lab.md) the first time a selected
test asks for it, and tears it down at the end of the session.  A plain unit run never
starts it.  There is no skipping: if the lab cannot come up, the tests that need it fail with
the lab's log tails, because CI must run them for real.

Every test that uses `lab` (directly or through another fixture) is marked `lab`
automatically, so `pytest -m "not lab"` is the fast unit run.

Environment: VOLCTL_TEST_LAB_DIR (default /var/tmp/volctl-test-lab-<pid>), VOLCTL_TEST_LAB_HOSTS
(default 2), VOLCTL_LAB_CACHE (the shared kernel/base-image cache).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.lab.info import LabInfo
from reconciler.lab.lab import Lab
from reconciler.lab.proc import free_ports
from reconciler.lab.testing import LabPool, drop_pool, make_pool, session_lab_dir

TEST_LAB_HOSTS = int(os.environ.get("VOLCTL_TEST_LAB_HOSTS", "2"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)


def session_test_lab_dir() -> Path:
    """$VOLCTL_TEST_LAB_DIR, or /var/tmp/volctl-test-lab-<pid> (one lab per session; labs of
    dead sessions are torn down on the way)."""
    if os.environ.get("VOLCTL_TEST_LAB_DIR"):
        return Path(os.environ["VOLCTL_TEST_LAB_DIR"])
    return session_lab_dir(Path("/var/tmp"), "volctl-test-lab")


@pytest.fixture(scope="session")
def lab() -> Iterator[LabInfo]:
    """The session's lab (LabInfo): TEST_LAB_HOSTS hosts h1.., Ceph with pool `rbd`, the base
    image `rbd/volctl-lab-base@base`, lab.json/inventory.yaml/volctl.yaml in TEST_LAB_DIR."""
    the_lab = Lab(session_test_lab_dir())
    the_lab.down(quiet=True)  # a lab left over by a killed session
    v1, v2 = free_ports(2)
    info = the_lab.up(TEST_LAB_HOSTS, mon_port=v1, mon_v2_port=v2)
    try:
        yield info
    finally:
        the_lab.down()


@pytest.fixture
def lab_pool(lab: LabInfo, tmp_path: Path) -> Iterator[LabPool]:
    """A fresh RBD pool for this test and a volctl config (Config + file) using it.

    At teardown every domain on every lab host is destroyed and undefined, then the pool is
    deleted.  The base image stays in the lab pool; clones into this pool are fine."""
    pool = make_pool(lab, tmp_path / "volctl")
    try:
        yield pool
    finally:
        drop_pool(pool)
