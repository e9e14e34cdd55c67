"""`volctl --help` and `volctl get --help` load no heavy module.

The command modules import only the standard library when they are loaded and import the
controller, backends, loader and their libraries inside the command functions.  This test
builds the whole parser and prints a command's help in a fresh interpreter, then looks at what
was imported: one eager import in any command module fails it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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

# the same, also returning what the command printed
PROBE_OUTPUT = """
import contextlib, io, json, sys
from reconciler.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print(json.dumps([out.getvalue(), sorted(sys.modules)]))
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


def test_the_command_table_is_what_the_modules_register() -> None:
    """`volctl --help` lists each command from main.COMMANDS without importing its module;
    the words, their order, their help and their modules must be what the modules register."""
    import argparse
    import importlib

    from reconciler.cli.main import COMMANDS, build_parser

    def listing(parser: argparse.ArgumentParser) -> list[tuple[str, str | None]]:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return [(a.dest, a.help) for a in sub._choices_actions]

    full = build_parser()  # every module registered for real
    assert listing(full) == [(w, h) for w, _m, h in COMMANDS]
    assert listing(build_parser(["--help"])) == listing(full)
    for word, module, _help in COMMANDS:
        probe = argparse.ArgumentParser()
        importlib.import_module(f"reconciler.cli.{module}").register(probe.add_subparsers())
        assert word in dict(listing(probe)), (word, module)


@pytest.mark.parametrize(
    ("argv", "module"),
    [(["get", "--help"], "get_cmd"), (["--config", "x.yaml", "logs", "--help"], "console_cmd")],
)
def test_only_the_named_command_module_is_imported(argv: list[str], module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True
    ).stdout
    commands = {m for m in json.loads(out) if m.startswith("reconciler.cli.")}
    helpers = {"reconciler.cli.main", "reconciler.cli.client", "reconciler.cli.selector"}
    helpers |= {"reconciler.cli.leader_cmd"}  # get's own helpers
    assert f"reconciler.cli.{module}" in commands
    assert commands - helpers == {f"reconciler.cli.{module}"}, sorted(commands)


def test_help_imports_no_command_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert {m for m in json.loads(out) if m.startswith("reconciler.cli.")} == {
        "reconciler.cli.main"
    }


def test_apply_to_a_directory_store_loads_no_ceph_or_libvirt(tmp_path: Path) -> None:
    """`volctl apply` into a directory store really writes, and never loads librados, librbd
    or libvirt's bindings (a third of its start-up before; bench B4 `apply` → first action)."""
    cfg = tmp_path / "volctl.yaml"
    cfg.write_text(f"api: http://127.0.0.1:9\nstore: {tmp_path / 'store'}\nstateDir: {tmp_path}\n")
    doc = tmp_path / "vol.yaml"
    doc.write_text("apiVersion: volctl.io/v1\nkind: Volume\nmetadata: {name: v1}\nspec: {size: 1}")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "--config", str(cfg), "apply", "-f", str(doc)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    loaded = set(json.loads(out))
    assert (tmp_path / "store" / "volume" / "v1.yaml").is_file()  # the apply did its work
    assert "jsonschema" in loaded  # it validated
    assert not loaded & {"rados", "rbd", "libvirt"}, sorted(loaded & {"rados", "rbd", "libvirt"})


def test_get_asks_an_http_api_without_urllib(tmp_path: Path) -> None:
    """`volctl get vms` against a real HTTP server: it prints what the server said, and
    loads neither `urllib.request` nor `http.client` nor `ssl` (bench B4 `get`)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies = {
        "/api/v1/vms": {"items": [{"name": "web-1", "phase": "Ready", "labels": {}}]},
        "/api/v1/status": {"time": 1.0},
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_a: object) -> None:
            pass

        def do_GET(self) -> None:
            data = json.dumps(bodies[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        cfg = tmp_path / "volctl.yaml"
        api = f"http://127.0.0.1:{httpd.server_address[1]}"
        cfg.write_text(f"api: {api}\nstore: {tmp_path / 'store'}\nstateDir: {tmp_path}\n")
        probe = PROBE_OUTPUT
        run = subprocess.run(
            [sys.executable, "-c", probe, "--config", str(cfg), "get", "vms", "-o", "name"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert run.returncode == 0, run.stderr
    printed, modules = json.loads(run.stdout)
    assert "web-1" in printed, (printed, run.stderr)
    heavy = set(modules) & {"urllib.request", "http.client", "ssl", "email"}
    assert not heavy, sorted(heavy)
