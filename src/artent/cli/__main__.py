"""``python -m artent.cli``: the same as the ``artent`` console script."""

import sys

from artent.cli import main

sys.exit(main())
