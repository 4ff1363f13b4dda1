"""``python -m simnet``."""

import sys

from simnet.cli import main

if __name__ == "__main__":  # not when a spawned sweep worker imports this module
    sys.exit(main())
