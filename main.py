"""`python main.py` does what `vae-explorer` does: the GUI, or a headless command such as `train`."""

import sys

from explorer.launch import main

if __name__ == "__main__":
    sys.exit(main())
