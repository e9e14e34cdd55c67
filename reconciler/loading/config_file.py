"""The volctl config file read the way specs are: line-marked YAML checked by a JSON Schema.

`reconciler/config.py` owns the Config values and where the file is found; it sits below
`loading` in the layer table, so the check lives here and the commands load their config
through `load_config` below.  Every problem is reported at once as `file:line: field:
message` (`schemas/config.schema.json`), an unknown key with a `did you mean`; a problem with
a token never shows its value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler import config
from reconciler.errors import SpecError
from reconciler.loading.diagnostics import Diagnostic, SpecValidationError, dotted
from reconciler.loading.schema import CONFIG_SCHEMA, explain, validator
from reconciler.loading.yamldoc import parse


def load_config(explicit: str | None = None) -> config.Config:
    """`config.load_config` with the schema check."""
    return config.load_config(explicit, read=read_checked)


class ConfigError(SpecValidationError):
    """The config file has problems; the message lists each as file:line: field: message."""

    def __str__(self) -> str:
        count = len(self.diagnostics)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(str(d) for d in self.diagnostics)
        return f"invalid config ({count} {noun}):\n{lines}"


def read_checked(path: Path) -> dict[str, Any]:
    """The config file's plain data, validated against the schema (ConfigError otherwise)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read config: {exc}") from exc
    documents, problems = parse(str(path), text)
    if problems:
        raise ConfigError(problems)
    if not documents:
        return {}
    if len(documents) > 1:
        raise ConfigError(
            [Diagnostic(str(path), documents[1].line, "", "a config is one YAML document")]
        )
    doc = documents[0]
    if not isinstance(doc.data, dict):
        raise ConfigError([Diagnostic(str(path), doc.line, "", "config must be a mapping")])
    diagnostics = [
        Diagnostic(str(path), doc.line_of(where), dotted(where), _no_secret(where, message))
        for error in validator(CONFIG_SCHEMA).iter_errors(doc.data)
        for where, message in explain(error)
    ]
    if diagnostics:
        raise ConfigError(sorted(dict.fromkeys(diagnostics), key=lambda d: (d.line, d.path)))
    return doc.data


def _no_secret(where: tuple[str | int, ...], message: str) -> str:
    """A problem with a token is told without the value: it is a secret even when invalid."""
    if where and str(where[-1]).lower().endswith("token"):
        return "must be a non-empty string (the value is not shown)"
    return message
