"""``python -m service …``: the command line (see :mod:`service.cli`)."""

import os
import sys

from .cli import main

try:
    sys.exit(main())
except BrokenPipeError:  # e.g. `… keys list | head`: not an error worth a traceback
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
