"""Writes ``composed_configs.json``: the config of every variant x preset as the code at 51f5a44
composed it (before the variants became config groups, recipes/conf/variant/).

Run once, at 51f5a44, from the repository root:

    python tests/data/make_composed_configs.py

Each entry is ``dataclasses.asdict`` of ``compose(suite, ["preset=<p>", "variant=<v>"])``.
``tests/test_config.py::test_every_variant_and_preset_composes_as_at_51f5a44`` composes them
again: the same runs as before, and the same ``comparable()`` (existing checkpoints resume).
Rerunning it with later code would overwrite the reference with that code's output: don't.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from torchrl_psmbpo.recipes.cli import compose

VARIANTS = ("sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed")
SUITES = {"dmc": ("paper", "small", "cpu_dmc"), "metaworld": ("cpu_metaworld",),
          "gym": ("paper", "small")}

if __name__ == "__main__":
    configs = {f"{suite} preset={preset} variant={variant}": dataclasses.asdict(
                   compose(suite, [f"preset={preset}", f"variant={variant}"]))
               for suite, presets in SUITES.items() for preset in presets for variant in VARIANTS}
    path = Path(__file__).with_name("composed_configs.json")
    path.write_text(json.dumps(configs, indent=1, sort_keys=True) + "\n")
    print(f"{len(configs)} configs -> {path}")
