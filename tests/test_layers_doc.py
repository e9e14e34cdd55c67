"""ARCHITECTURE.md's layer table is the one import-linter enforces (`.importlinter`).

The rules themselves are checked by `lint-imports` in `make lint`; this only keeps the
document from drifting away from them, row by row.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _contract_rows() -> list[set[str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"]
    return [{m.strip() for m in line.split("|")} for line in layers.strip().splitlines()]


def _document_rows() -> list[set[str]]:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("### Layers", 1)[1].split("\n\n### ", 1)[0]
    rows = re.findall(r"^\| \d+ \| (.+?) \|", section, flags=re.MULTILINE)
    return [set(re.findall(r"`([\w.]+)`", cell)) for cell in rows]


def test_architecture_md_shows_the_enforced_layers() -> None:
    assert _document_rows() == _contract_rows()
