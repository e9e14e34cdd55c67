"""Where spec text comes from: files, directory trees, stdin, or text already in memory.

Reading is kept apart from parsing so the git source and `apply` can hand in text they
fetched themselves, and so that unreadable input (missing paths, binary files, bad
encodings, absurd sizes) becomes a diagnostic like any other instead of a traceback.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from reconciler.loading.diagnostics import Diagnostic

MAX_FILE_BYTES = 64 * 1024 * 1024
STDIN = "-"
STDIN_NAME = "<stdin>"
SUFFIXES = (".yaml", ".yml")


def decode(name: str, raw: bytes | str) -> tuple[str | None, Diagnostic | None]:
    """Text of one source, or why it is not a usable spec file."""
    if len(raw) > MAX_FILE_BYTES:
        return None, Diagnostic(
            name, 0, "", f"file is too large (the limit is {MAX_FILE_BYTES} bytes)"
        )
    if isinstance(raw, str):
        try:  # text from memory (git, apply) must be encodable: no lone surrogates
            data = raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            line = raw.count("\n", 0, exc.start) + 1
            return None, Diagnostic(name, line, "", "text contains an invalid character")
    else:
        data = raw
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None, Diagnostic(name, 1, "", "file is UTF-16 text; spec files must be UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        return None, _binary(name, data.count(b"\n", 0, nul) + 1)
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, Diagnostic(
            name,
            line,
            "",
            f"not valid UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); spec files must be UTF-8",
        )


def _binary(name: str, line: int) -> Diagnostic:
    return Diagnostic(name, line, "", "not a text file (contains NUL bytes)")


def expand(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[str], list[Diagnostic]]:
    """Files to read, in order: given files as is, directories walked recursively (sorted).

    Hidden files and directories (`.git`, `.github`...) are skipped inside directories.
    """
    files: list[str] = []
    diagnostics: list[Diagnostic] = []
    for given in paths:
        name = os.fspath(given)
        if name == STDIN:
            files.append(STDIN)
            continue
        path = Path(name)
        if path.is_dir():
            found = sorted(_walk(path))
            if not found:
                diagnostics.append(
                    Diagnostic(name, 0, "", "no *.yaml or *.yml files in this directory")
                )
            files.extend(found)
        elif path.exists():
            files.append(name)
        else:
            diagnostics.append(Diagnostic(name, 0, "", "no such file or directory"))
    return files, diagnostics


def _walk(root: Path) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            if filename.endswith(SUFFIXES) and not filename.startswith("."):
                yield os.path.join(dirpath, filename)  # noqa: PTH118 - keeps the user's spelling


def read(
    files: Iterable[str], stdin: BinaryIO | None = None
) -> tuple[list[tuple[str, str]], list[Diagnostic]]:
    """(display name, text) of each file; unreadable ones become diagnostics."""
    texts: list[tuple[str, str]] = []
    diagnostics: list[Diagnostic] = []
    for name in files:
        try:
            if name == STDIN:
                stream = stdin if stdin is not None else sys.stdin.buffer
                raw = stream.read(MAX_FILE_BYTES + 1)
                display = STDIN_NAME
            else:
                with Path(name).open("rb") as handle:
                    raw = handle.read(MAX_FILE_BYTES + 1)
                display = name
        except OSError as exc:
            diagnostics.append(Diagnostic(name, 0, "", f"cannot read: {exc.strerror or exc}"))
            continue
        text, problem = decode(display, raw)
        if problem is not None:
            diagnostics.append(problem)
        elif text is not None:
            texts.append((display, text))
    return texts, diagnostics
