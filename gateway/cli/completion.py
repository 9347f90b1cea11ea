"""`gateway completion bash|zsh`: a shell completion script made from the command's own parser,
so it always knows every subcommand and option (no extra dependency such as argcomplete).

    source <(gateway completion bash)       # in ~/.bashrc
    source <(gateway completion zsh)        # in ~/.zshrc (through bashcompinit)
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import add_common


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a completion script: `source <(gateway completion bash)` in ~/.bashrc, "
        "or `source <(gateway completion zsh)` in ~/.zshrc.",
    )
    parser.add_argument("shell", choices=["bash", "zsh"])
    add_common(parser)  # every command takes --config and --json (contract §10); neither matters here
    parser.set_defaults(handler=run)


def _tree(parser: argparse.ArgumentParser, path: str, table: dict[str, list[str]]) -> None:
    words = [o for action in parser._actions for o in action.option_strings if o.startswith("--")]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                words.append(name)
                _tree(child, f"{path} {name}".strip(), table)
    table[path] = sorted(set(words))


def script(root: argparse.ArgumentParser, shell: str) -> str:
    table: dict[str, list[str]] = {}
    _tree(root, "", table)
    cases = "\n".join(f'    "{path}") words="{" ".join(words)}" ;;' for path, words in sorted(table.items()))
    body = f"""_gateway_complete() {{
  local cur path="" word words
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  # The subcommand path: the words before the cursor that are not options.
  for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
    case "$word" in -*) ;; *) case " $(_gateway_words "${{path}}") " in *" $word "*) path="${{path:+$path }}$word" ;; esac ;; esac
  done
  words=$(_gateway_words "$path")
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
_gateway_words() {{
  local words=""
  case "$1" in
{cases}
  esac
  echo "$words"
}}
complete -o default -F _gateway_complete gateway
"""
    if shell == "zsh":
        body = "autoload -U +X bashcompinit && bashcompinit\n" + body
    return body


def run(args: argparse.Namespace) -> int:
    from gateway.cli import build_parser

    print(script(build_parser(), args.shell), end="")
    return 0
