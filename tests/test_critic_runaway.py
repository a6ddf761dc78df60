"""The model-based critic's runaway on walker-walk, reproduced small, and the fix.

DeepMind Control's simulator is deterministic, so the variance a dynamics member learns is its own
error. Stepping imagined rollouts with a SAMPLE of each member's Gaussian (MBPO's choice) puts that
error into 95% of the critic's next states as noise; the critic's targets at those states run
ahead of its values, and its Q climbs past any return the task can pay while the temperature
climbs to hold the entropy (docs/world_model.md). With each member's MEAN (the recipes' default,
``rollout.deterministic=true``) the same agent on the same data and model learns as SAC on the
real data alone does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from torchrl_psmbpo.recipes.cli import compose, save_config
from torchrl_psmbpo.recipes.loop import train

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "diagnose" / "diagnose_runaway.py"
sys.path.insert(0, str(SCRIPT.parent))  # as when run: it imports its helpers (run_dirs) by name
spec = importlib.util.spec_from_file_location("diagnose_runaway", SCRIPT)
diag = importlib.util.module_from_spec(spec)
spec.loader.exec_module(diag)


def test_sampled_imagined_steps_make_the_critic_run_away_and_mean_steps_do_not(tmp_path):
    # 1,000 random agent steps of walker-walk at action repeat 4 (4,000 simulator steps: where
    # the runaway was seen) and one model fit; then fresh mbpo agents on that data and model,
    # 300 agent steps of G = 10 updates each
    cfg = compose("dmc", ["variant=mbpo", "preset=cpu_dmc", "task=dmc:walker-walk",
                          "env.action_repeat=4", "updates_per_step=10",
                          "total_steps=1001", "init_random_steps=1000", "progress=false",
                          "eval.every=100000", "eval.episodes=1"])
    save_config(tmp_path, cfg)
    train(cfg, tmp_path)
    args = [str(tmp_path), "--steps", "300", "--every", "300"]
    sampled = diag.main(args + ["rollout.deterministic=false"])[-1]
    mean = diag.main(args + ["rollout.deterministic=true"])[-1]
    real_only = diag.main(args + ["policy.real_ratio=1.0"])[-1]
    # the runaway: TD errors two orders of magnitude above the real-data critic's
    assert sampled["loss_q"] > 30 * real_only["loss_q"], (sampled, real_only)
    assert sampled["q_real"] > 2 * real_only["q_real"], (sampled, real_only)
    # the fix: the mean-stepped critic behaves as the one trained on real data only
    assert mean["loss_q"] < 10 * real_only["loss_q"] and mean["loss_q"] < sampled["loss_q"] / 30, (
        mean, real_only, sampled)
    assert 0.5 < mean["q_real"] / real_only["q_real"] < 1.5, (mean, real_only)
