"""The headless commands (`vae-explorer train | sample | eval | restore-eval`). The top of core: nothing imports it
but the entry point (`explorer/launch.py`) and `python -m core.cli` (which torchrun runs)."""

from core.cli.common import COMMANDS
from core.cli.main import main

__all__ = ["COMMANDS", "main"]
