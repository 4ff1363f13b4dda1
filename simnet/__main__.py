"""``python -m simnet``."""

import sys

from simnet.cli import main

sys.exit(main())
