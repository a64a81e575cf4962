"""The `vae-explorer` entry point. Qt-free until the GUI is actually asked for.

`vae-explorer train|sample|eval|...` runs a headless command from `core.cli` without importing Qt, so it works on a
server with no display; `vae-explorer [checkpoint-or-run-folder]` opens the window. A word that is neither a command
nor an existing path is a typo (`vae-explorer trian`), reported with the closest command instead of opening the GUI.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

PROG = "vae-explorer"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from core import cli

    if argv and (argv[0] in cli.COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return cli.main(argv)
    if argv and argv[0] == "gui":
        argv = argv[1:]
    problem = launch_problem(argv, cli.COMMANDS)
    if problem:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    from explorer.app import run

    return run(argv)


def launch_problem(argv: list[str], commands: tuple[str, ...]) -> str:
    """What is wrong with the words given to open the GUI ("" when nothing): an unknown option, a path that does not
    exist (maybe a mistyped command), or more than one path."""
    options = [a for a in argv if a.startswith("-")]
    paths = [a for a in argv if not a.startswith("-")]
    if options:
        return (f"unknown option {options[0]!r}; the window takes one checkpoint or run folder "
                f"(`{PROG} [PATH]`), and `{PROG} --help` lists the commands")
    if len(paths) > 1:
        return f"give at most one checkpoint or run folder to open, not {len(paths)}"
    if paths and not Path(paths[0]).exists():
        word = paths[0]
        close = difflib.get_close_matches(word, commands, n=1)
        if close and "/" not in word and "." not in word:
            return f"unknown command {word!r}; did you mean `{PROG} {close[0]}`? (`{PROG} --help` lists the commands)"
        return (f"{word} does not exist; give a checkpoint (.safetensors) or a run folder, or one of the commands "
                f"{', '.join(commands)}")
    return ""


if __name__ == "__main__":
    sys.exit(main())
