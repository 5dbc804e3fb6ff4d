"""``python -m service …``: the command line (see :mod:`service.cli`)."""

import sys

from .cli import main

sys.exit(main())
