"""EpisodeSeeder: each episode's initial state is a function of (seed, finished episodes)."""

from __future__ import annotations

import pytest
import torch

from torchrl_psmbpo.envs.factory import make_env
from torchrl_psmbpo.envs.episode_seeding import EpisodeSeeder, episode_seed


def _seeded(task: str, seed: int = 3):
    env = make_env(task, seed=11)
    env.append_transform(EpisodeSeeder(seed=seed))
    return env


def _finish_episode(env, td):
    while True:
        td = env.rand_step(td)
        if td["next", "done"].any():
            return env.reset()
        td = env.step_mdp(td)


@pytest.mark.parametrize("task", ["gym:Pendulum-v1", "dmc:cartpole-swingup", "metaworld:reach-v3"])
def test_episode_starts_are_reproducible_from_state_dict(task):
    env = _seeded(task)
    starts = [env.reset()["observation"]]
    td = env.reset()
    starts.append(_finish_episode(env, td)["observation"])
    seeder = env.transform[-1]
    assert int(seeder.finished_episodes) == 1
    assert not torch.equal(starts[0], starts[1])

    resumed = _seeded(task)
    resumed.transform[-1].load_state_dict(seeder.state_dict())
    torch.testing.assert_close(resumed.reset()["observation"], starts[1], rtol=0, atol=0)
    other_seed = _seeded(task, seed=4)
    assert not torch.equal(other_seed.reset()["observation"], starts[0])


def test_episode_seed_is_deterministic_and_distinct():
    assert episode_seed(0, 1) == episode_seed(0, 1)
    assert len({episode_seed(s, e) for s in range(5) for e in range(100)}) == 500
    assert 0 <= episode_seed(2**40, 7) < 2**31
