"""`volctl import-legacy`: the seed's machines/images/types files to volctl YAML.

Output goes to stdout as one multi-document stream, or with `-o DIR` into one file per
kind.  Any malformed input line fails the whole run with file:line errors and nothing is
written, and the produced YAML is run through the real loader before it is written, so
what this command emits always passes `volctl validate`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# by Kind value (a StrEnum): this module is loaded for every `volctl` start, the model only
# when a command runs
FILES = {
    "Host": "hosts.yaml",
    "Image": "images.yaml",
    "InstanceType": "instancetypes.yaml",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import-legacy",
        help="convert the seed's machines, images and types files into spec YAML",
        description="Convert the seed's input files: machines (user@host per line), images "
        "(user@host:/path/name.img per line) and types (JSON). Blank lines and # comments "
        "are ignored.",
    )
    parser.add_argument("--machines", required=True, metavar="FILE", help="user@host per line")
    parser.add_argument(
        "--images", required=True, metavar="FILE", help="user@host:/path/name.img per line"
    )
    parser.add_argument(
        "--types",
        required=True,
        metavar="FILE",
        help='JSON {"types": [{"tid": 1, "cpu": 1, "ram": 512, "disk": 1}, ...]}',
    )
    parser.add_argument(
        "-o",
        "--output-dir",
        metavar="DIR",
        help="write hosts.yaml, images.yaml and instancetypes.yaml into DIR (default: stdout)",
    )
    parser.set_defaults(func=run)


def _read(path: str) -> tuple[str, str]:
    from reconciler.loading.diagnostics import Diagnostic, SpecValidationError

    try:
        return path, Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8 text"
        raise SpecValidationError([Diagnostic(path, 0, "", f"cannot read: {reason}")]) from exc


def run(args: argparse.Namespace) -> int:
    from reconciler import legacy
    from reconciler.loading import check_texts
    from reconciler.loading.diagnostics import SpecValidationError

    try:
        converted = legacy.convert(_read(args.machines), _read(args.images), _read(args.types))
    except SpecValidationError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        print("import-legacy: nothing written", file=sys.stderr)
        return 1
    sources = f"{args.machines}, {args.images}, {args.types}"
    header = f"# Converted by `volctl import-legacy` from {sources}.\n"
    outputs: dict[str, str] = {}
    if args.output_dir:
        modeline = _modeline(Path(args.output_dir))
        for kind, filename in FILES.items():
            docs = [c.document for c in converted if c.kind == kind]
            if docs:
                outputs[filename] = modeline + header + legacy.dump(docs)
    else:
        outputs["<stdout>"] = header + legacy.dump([c.document for c in converted])
    result = check_texts(outputs.items())
    if not result.ok:  # a bug in the converter, not in the input: say so plainly
        for diagnostic in result.diagnostics:
            print(f"internal error: {diagnostic}", file=sys.stderr)
        return 1
    if not args.output_dir:
        sys.stdout.write(outputs["<stdout>"])
        return 0
    _write_all(Path(args.output_dir), outputs)
    print(f"{args.output_dir}: wrote {', '.join(outputs)} ({result.summary()})")
    return 0


def _modeline(directory: Path) -> str:
    from reconciler.loading.schema import TOP_SCHEMA, schema_dir

    target = os.path.relpath(schema_dir() / TOP_SCHEMA, directory.resolve())
    return f"# yaml-language-server: $schema={target}\n"


def _write_all(directory: Path, outputs: dict[str, str]) -> None:
    """Write every file or none: temp files first, then renames."""
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for filename, text in outputs.items():
            fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            staged.append((Path(tmp_name), directory / filename))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        tmp.replace(final)
