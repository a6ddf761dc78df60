"""Make the recipes (plain scripts, not a package) importable from the tests."""

import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
if str(RECIPES) not in sys.path:
    sys.path.insert(0, str(RECIPES))
