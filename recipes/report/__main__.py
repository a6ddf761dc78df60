"""``python -m torchrl_psmbpo.recipes.report <runs> [options]``: see :mod:`torchrl_psmbpo.recipes.report`."""

import sys

from torchrl_psmbpo.recipes.report.cli import main

sys.exit(main())
