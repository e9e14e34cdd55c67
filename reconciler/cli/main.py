"""`volctl` entry point: a table of contents of the commands, each in its own module.

Each command module exposes `register(subparsers)` and sets `func` on its parser; the
function returns the process exit code.  A command's module is imported only when that
command runs: `main` finds the command word in argv, registers that module's real parser and
gives every other command a placeholder carrying just its one-line help (what `volctl
--help` lists).  So `volctl --help` imports no command module at all and `volctl get`
imports only `get`'s, not the controller, lab or version code of the others.
`build_parser()` without argv registers every module for real (tests, tools).
`tests/cli/test_startup.py` checks that `COMMANDS` agrees with what the modules register.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from reconciler.errors import VolctlError

# (command word, module under reconciler.cli, the help `volctl --help` shows), in the order
# `volctl --help` lists them; a module that registers several words appears once per word
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("validate", "validate", "check spec files against the schemas and cross-document rules"),
    (
        "import-legacy",
        "legacy_cmd",
        "convert the seed's machines, images and types files into spec YAML",
    ),
    ("lab", "lab_cmd", "run a local lab: single-node Ceph + N libvirtd hosts"),
    ("run", "run_cmd", "run the controller: reconcile loop and REST view"),
    ("reconcile", "reconcile_cmd", "run one reconcile pass; exit 0 only if converged"),
    ("plan", "plan_cmd", "show what volctl would change now (exit 0: none, 2: changes, 1: error)"),
    ("apply", "apply_cmd", "create or update resources in the spec store from files"),
    (
        "diff",
        "diff_cmd",
        "show what apply (or merging a git revision) would change "
        "(exit 0 same, 1 different, 2 error)",
    ),
    ("delete", "delete_cmd", "remove resources from the spec store (the controller converges)"),
    ("get", "get_cmd", "list resources as the controller sees them"),
    ("describe", "describe_cmd", "show a resource's spec, status, conditions and events"),
    ("console", "console_cmd", "attach to a VM's serial console (detach with Ctrl-])"),
    ("logs", "console_cmd", "print a VM's serial console log"),
    ("completion", "completion_cmd", "print a shell completion script (bash or zsh)"),
    (
        "doctor",
        "doctor_cmd",
        "check that this site is ready: hosts, QEMU/RBD, secrets, Ceph caps, clocks",
    ),
    (
        "version",
        "version_cmd",
        "print the versions of volctl, libvirt (library and hosts) and Ceph",
    ),
    ("store", "store_cmd", "manage the spec store (migrate)"),
)
_GLOBAL_WITH_VALUE = ("--config",)


def command_word(argv: Sequence[str]) -> str | None:
    """The command the arguments name (the first word that is not a global option)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif arg == "--":
            return None
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the module of the command it names is imported."""
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
    word_of = None if argv is None else command_word(argv)
    wanted = next((m for w, m, _ in COMMANDS if w == word_of), None)
    registered: set[str] = set()
    for word, module, help_text in COMMANDS:
        if module in registered:
            continue
        if argv is None or module == wanted:
            importlib.import_module(f"reconciler.cli.{module}").register(sub)
            registered.add(module)
        else:  # a placeholder: its help line only; never parsed, as it is not the command
            sub.add_parser(word, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(args_in)
    args = parser.parse_args(args_in)
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
