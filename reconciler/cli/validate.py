"""`volctl validate -f PATH...`: check specs without touching anything.

Meant for humans, CI and pre-commit alike: exit 0 and a one-line summary when the set is
valid, exit 1 and every diagnostic (text on stderr, or a JSON list on stdout with
`-o json`) when it is not.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from reconciler.cli import client


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check spec files against the schemas and cross-document rules",
        description="Check spec files, directories (recursive *.yaml/*.yml) or stdin ('-'). "
        "Exit 0 when valid, 1 when not.",
    )
    client.add_filename(parser)
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default) or json: a list of diagnostics on stdout",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.loading import check_paths

    result = check_paths(args.paths)
    if args.output == "json":
        json.dump([d.to_dict() for d in result.diagnostics], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0 if result.ok else 1
    where = ", ".join("<stdin>" if p == "-" else p for p in args.paths)
    if result.ok:
        print(f"{where}: {result.summary('valid')}")
        return 0
    for diagnostic in result.diagnostics:
        print(diagnostic, file=sys.stderr)
    count = len(result.diagnostics)
    print(f"{where}: invalid, {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
    return 1
