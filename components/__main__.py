"""`python -m smtps_iredmail`: the same command as `smtps`."""

import sys

from .core.cli import main

sys.exit(main())
