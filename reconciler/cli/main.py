"""`volctl` entry point: builds the argument parser from one module per command group.

Each command module exposes `register(subparsers)` and sets `func` on its parser; the
function returns the process exit code.  Keeping one module per command keeps this file a
table of contents.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from reconciler.cli import (
    apply_cmd,
    completion_cmd,
    console_cmd,
    delete_cmd,
    describe_cmd,
    diff_cmd,
    doctor_cmd,
    get_cmd,
    lab_cmd,
    legacy_cmd,
    plan_cmd,
    reconcile_cmd,
    run_cmd,
    store_cmd,
    validate,
    version_cmd,
)
from reconciler.errors import VolctlError

# one module per command group, each with register(subparsers); their heavy imports happen
# inside the command functions, so `volctl --help` starts fast
COMMANDS = (
    validate,
    legacy_cmd,
    lab_cmd,
    run_cmd,
    reconcile_cmd,
    plan_cmd,
    apply_cmd,
    diff_cmd,
    delete_cmd,
    get_cmd,
    describe_cmd,
    console_cmd,
    completion_cmd,
    doctor_cmd,
    version_cmd,
    store_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="volctl",
        description="Declarative control plane for libvirt VMs and Ceph RBD volumes.",
    )
    parser.add_argument(
        "--config",
        help="config file (default: $VOLCTL_CONFIG, ./volctl.yaml, "
        "~/.config/volctl/config.yaml, /etc/volctl/config.yaml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except VolctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `volctl get -o json | head`: the reader left; exit quietly like other CLIs.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
