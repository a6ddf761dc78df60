"""``python -m torchrl_psmbpo.recipes.report <runs> [options]``: see :mod:`torchrl_psmbpo.recipes.report`."""

import sys

from torchrl_psmbpo.recipes.report.cli import main

if __name__ == "__main__":  # importing the module (pkgutil.walk_packages) runs nothing
    sys.exit(main())
