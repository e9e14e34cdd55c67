"""A known pattern written into a volctl volume with `rbd import`, and its checksum.

Why the detour through a staging image: `rbd import` only creates images, and a volume must
be created (and marked) by volctl itself, or volctl treats it as foreign.  So the pattern file
(the volume's full size, sparse: a few seeded random MiB and zeros elsewhere, so the
memstore OSD holds only those MiB) is imported into a staging image of the same size, and its
data is carried into the volume with `rbd export-diff | rbd import-diff`; the staging image is
removed.  The expected checksum is the sha256 of the file, which is what `rbd export` of the
volume must stream back after every trial.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

from bench.common.lab import Lab

MIB = 1024 * 1024


def make_file(path: Path, size: int, seed: int, chunks: int = 4) -> str:
    """Write a sparse file of `size` bytes with `chunks` random MiB; return its sha256."""
    rng = random.Random(seed)
    with path.open("wb") as fh:
        fh.truncate(size)
        for _ in range(chunks):
            off = rng.randrange(0, size // MIB) * MIB
            fh.seek(off)
            fh.write(rng.randbytes(MIB))
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(4 * MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def write_into(lab: Lab, pool: str, image: str, pattern: Path) -> None:
    """Carry the pattern file's data into the existing image `pool/image`."""
    staging = f"r1-staging-{image}"
    env = lab.ceph_env()

    def rbd(*args: str) -> None:
        subprocess.run(["rbd", *args], check=True, env=env, timeout=600)

    subprocess.run(
        ["rbd", "rm", "--no-progress", f"{pool}/{staging}"],
        env=env,
        check=False,
        capture_output=True,
    )
    rbd("import", "--no-progress", str(pattern), f"{pool}/{staging}")
    try:
        export = subprocess.Popen(
            ["rbd", "export-diff", "--no-progress", f"{pool}/{staging}", "-"],
            stdout=subprocess.PIPE,
            env=env,
        )
        imp = subprocess.run(
            ["rbd", "import-diff", "--no-progress", "-", f"{pool}/{image}"],
            stdin=export.stdout,
            env=env,
            timeout=600,
            check=False,
        )
        assert export.stdout is not None
        export.stdout.close()
        if export.wait(timeout=600) != 0 or imp.returncode != 0:
            raise RuntimeError(f"carrying the pattern into {pool}/{image} failed")
    finally:
        rbd("rm", "--no-progress", f"{pool}/{staging}")
