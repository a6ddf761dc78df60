"""``python -m recipes.report <runs> [options]``: see :mod:`recipes.report`."""

import sys

from recipes.report.cli import main

sys.exit(main())
