"""``python -m SpineMetSegLib.cli``: the ``spinemetseg`` command, for callers without the console script."""

import sys

from . import main

sys.exit(main())
