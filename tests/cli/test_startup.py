"""`volctl --help` and `volctl get --help` load no heavy module.

The command modules import only the standard library when they are loaded and import the
controller, backends, loader and their libraries inside the command functions.  This test
builds the whole parser and prints a command's help in a fresh interpreter, then looks at what
was imported: one eager import in any command module fails it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = {"yaml", "jsonschema", "structlog", "watchdog", "libvirt", "rados", "rbd"}
HEAVY |= {"prometheus_client", "urllib.request", "ssl"}
# what the CLI may load at start: itself, the error types, the lab's stdlib-only defaults and
# the status value types (apply --wait's Phase sets), which have only the stdlib underneath
LIGHT_OURS = {"reconciler", "reconciler.cli", "reconciler.errors", "reconciler.lab"}
LIGHT_OURS |= {"reconciler.lab.state", "reconciler.lab.guest_image", "reconciler.lab.proc"}
LIGHT_OURS |= {"reconciler.status", "reconciler.status.types", "reconciler.model"}
LIGHT_OURS |= {"reconciler.source", "reconciler.source.protocol"}

PROBE = """
import contextlib, io, json, sys
from reconciler.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("argv", [["--help"], ["get", "--help"], ["apply", "--help"]])
def test_help_loads_no_heavy_module(argv: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert not loaded & HEAVY, sorted(loaded & HEAVY)
    ours = {m for m in loaded if m.startswith("reconciler")}
    extra = {m for m in ours - LIGHT_OURS if not m.startswith("reconciler.cli.")}
    assert not extra, sorted(extra)
