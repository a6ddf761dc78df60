"""bench/diagnose/diagnose_critic.py: observations as make_env's, returns as SAC's soft target."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from torchrl_psmbpo.envs import make_env

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "diagnose" / "diagnose_critic.py"
sys.path.insert(0, str(SCRIPT.parent))  # as when run: it imports its helpers (run_dirs) by name
spec = importlib.util.spec_from_file_location("diagnose_critic", SCRIPT)
diag = importlib.util.module_from_spec(spec)
spec.loader.exec_module(diag)


@pytest.mark.parametrize("task", ["dmc:cartpole-swingup", "dmc:walker-walk"])
def test_observation_layout_is_make_envs(task):
    env = make_env(task, seed=3)
    obs = env.reset()["observation"].numpy()
    base = env.base_env
    while not hasattr(base, "_env"):
        base = base.base_env
    probe = diag.dm_env(task, 0)
    probe.reset()
    with probe.physics.reset_context():
        probe.physics.set_state(base._env.physics.get_state())
    np.testing.assert_array_equal(diag.flat(probe.task.get_observation(probe.physics)), obs)


def test_soft_returns_are_the_discounted_sum_with_the_entropy_bonus_after_t():
    rng = np.random.default_rng(0)
    r, logp, gamma, alpha = rng.normal(size=12), rng.normal(size=12), 0.9, 0.3
    want = [r[t] + sum(gamma ** (k - t) * (r[k] - alpha * logp[k]) for k in range(t + 1, 12))
            for t in range(12)]
    np.testing.assert_allclose(diag.soft_returns(r, logp, gamma, alpha), want, rtol=1e-12)
