"""The config as the CLI reads it: checked against its schema once per content, not per start.

Why: the schema check needs jsonschema and the loader, and importing them costs more than
everything else `volctl get` does (about a quarter of a second of CPU on the lab machine).  The
verdict depends only on the bytes of the config and of its schema, so a config that passed is
remembered by the SHA-256 of both: an empty file named after it in
`$XDG_CACHE_HOME/volctl/checked-configs/` (`~/.cache` by default) - a name, never the content,
which may hold a token.  The next start with the same bytes parses the file with libyaml and
skips the check.  A changed config or schema, a config that failed, or no writable cache
directory all mean the full check, with its `file:line: field: message` errors.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

CONFIG_SCHEMA = "config.schema.json"


def schema_file() -> Path:
    """The config's schema, found as `reconciler.loading.schema.schema_dir` finds it (that
    module imports jsonschema, which is what this one avoids; a test keeps the two equal)."""
    override = os.environ.get("VOLCTL_SCHEMA_DIR")
    if override:
        return Path(override) / CONFIG_SCHEMA
    package = Path(__file__).resolve().parents[1]
    installed = package / "schemas" / CONFIG_SCHEMA
    return installed if installed.is_file() else package.parent / "schemas" / CONFIG_SCHEMA


def marks_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "volctl" / "checked-configs"


def _mark(config: bytes) -> Path | None:
    try:
        schema = schema_file().read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256(schema + b"\0" + config).hexdigest()
    return marks_dir() / digest


def read(path: Path) -> dict[str, Any]:
    """The config file's plain data; schema-checked unless these very bytes passed before."""
    try:
        text = path.read_bytes()
    except OSError:
        text = None
    mark = _mark(text) if text is not None else None
    if text is not None and mark is not None and mark.is_file():
        import yaml

        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
        if isinstance(data, dict) or data is None:
            return data or {}
    from reconciler.loading.config_file import read_checked

    checked = read_checked(path)
    if mark is not None:
        try:
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.touch()
        except OSError:
            pass  # no cache: every start checks
    return checked
