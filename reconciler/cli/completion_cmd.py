"""`volctl completion bash|zsh`: shell completion scripts, like `kubectl completion`.

Static words (commands, kinds, flags) are in the script; resource names are completed by
calling `volctl get KIND -o name` so they always match what the controller reports.
"""

from __future__ import annotations

import argparse
from typing import Any

COMMANDS = (
    "apply diff delete get describe validate plan run reconcile import-legacy lab version "
    "completion console logs doctor"
)
KINDS = "vms volumes attachments hosts images types"

BASH = r"""# volctl bash completion; load with: source <(volctl completion bash)
_volctl() {
    local cur prev cmd kinds
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    cmd="${COMP_WORDS[1]}"
    kinds="__KINDS__"
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "__COMMANDS__ --config --help" -- "$cur"))
        return
    fi
    case "$prev" in
        -f|--filename|--config)
            COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null; return;;
        -o|--output)
            case "$cmd" in
                get) COMPREPLY=($(compgen -W "table wide json yaml name" -- "$cur"));;
                doctor) COMPREPLY=($(compgen -W "table json" -- "$cur"));;
                *) COMPREPLY=($(compgen -W "text json" -- "$cur"));;
            esac
            return;;
    esac
    case "$cmd" in
        apply) COMPREPLY=($(compgen -W "-f --filename --dry-run --wait --timeout" -- "$cur"));;
        diff) COMPREPLY=($(compgen -W "-f --filename" -- "$cur"));;
        validate|plan) COMPREPLY=($(compgen -W "-f --filename -o --output" -- "$cur"));;
        version) COMPREPLY=($(compgen -W "--client -o --output" -- "$cur"));;
        completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur"));;
        console|logs)
            local vms
            vms=$(volctl get vms -o name 2>/dev/null | sed 's|.*/||')
            COMPREPLY=($(compgen -W "$vms --uri" -- "$cur"));;
        get|describe|delete)
            if [[ $COMP_CWORD -eq 2 ]]; then
                COMPREPLY=($(compgen -W "$kinds -f --filename" -- "$cur"))
            else
                local names
                names=$(volctl get "${COMP_WORDS[2]}" -o name 2>/dev/null | sed 's|.*/||')
                COMPREPLY=($(compgen -W "$names -o --output -l --selector -w --watch" -- "$cur"))
            fi;;
    esac
}
complete -F _volctl volctl
"""

ZSH = r"""#compdef volctl
# volctl zsh completion; load with: source <(volctl completion zsh)
_volctl() {
    local -a commands kinds
    commands=(__COMMANDS__)
    kinds=(__KINDS__)
    if (( CURRENT == 2 )); then
        _describe 'command' commands
        return
    fi
    case "${words[CURRENT-1]}" in
        -f|--filename|--config) _files; return;;
        -o|--output)
            case "${words[2]}" in
                get) compadd table wide json yaml name;;
                doctor) compadd table json;;
                *) compadd text json;;
            esac
            return;;
    esac
    case "${words[2]}" in
        apply) compadd -- -f --filename --dry-run --wait --timeout;;
        diff) compadd -- -f --filename;;
        validate|plan) compadd -- -f --filename -o --output;;
        version) compadd -- --client -o --output;;
        completion) compadd bash zsh;;
        console|logs) compadd -- ${(f)"$(volctl get vms -o name 2>/dev/null | sed 's|.*/||')"};;
        get|describe|delete)
            if (( CURRENT == 3 )); then
                compadd -a kinds
            else
                compadd -- ${(f)"$(volctl get ${words[3]} -o name 2>/dev/null | sed 's|.*/||')"} \
                    -o --output -l --selector -w --watch
            fi;;
    esac
}
if [[ "$funcstack[1]" == "_volctl" ]]; then _volctl "$@"; else compdef _volctl volctl; fi
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="bash: source <(volctl completion bash); zsh: source <(volctl completion zsh)",
    )
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(func=run)


def script(shell: str) -> str:
    text = BASH if shell == "bash" else ZSH
    return text.replace("__COMMANDS__", COMMANDS).replace("__KINDS__", KINDS)


def run(args: argparse.Namespace) -> int:
    print(script(args.shell), end="")
    return 0
