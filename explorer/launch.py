"""The `vae-explorer` entry point. Qt-free until the GUI is actually asked for.

`vae-explorer train|sample|eval|...` runs a headless command from `core.cli` without importing Qt, so it works on a
server with no display; `vae-explorer [checkpoint-or-run-folder]` opens the window.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from core import cli

    if argv and (argv[0] in cli.COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return cli.main(argv)
    if argv and argv[0] == "gui":
        argv = argv[1:]
    from explorer.app import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
