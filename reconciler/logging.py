"""structlog configuration: one JSON object per line, and never a key in any of them.

The controller logs one event per action (with its duration) and one per pass, all bound to
the pass's `reconcile_id`, so `jq 'select(.reconcile_id=="...")'` shows one pass.  A last
processor scrubs anything that looks like a cephx key and fields named like secrets, as a
guard behind the rule that no code path logs them in the first place.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_CEPHX_KEY = re.compile(r"AQ[A-Za-z0-9+/]{36,40}={0,2}")
_SECRET_FIELDS = ("key", "secret", "token", "password", "keyring")
REDACTED = "[redacted]"


def redact(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Drop secret-looking fields and mask cephx keys inside any string value."""
    for name in list(event):
        lowered = name.lower()
        if any(word in lowered for word in _SECRET_FIELDS) and not lowered.endswith("_uuid"):
            event[name] = REDACTED
            continue
        value = event[name]
        if isinstance(value, str) and "AQ" in value:
            event[name] = _CEPHX_KEY.sub(REDACTED, value)
    return event


class _Stderr:
    """sys.stderr looked up at every write, so a replaced stderr (tests, daemons) is honoured."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "info", stream: TextIO | None = None, *, json: bool = True) -> None:
    """Set up structlog for the CLI and the controller (call once per process)."""
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(stream or _Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
