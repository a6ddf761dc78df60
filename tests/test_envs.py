"""The environment factory and the Gym termination functions."""

from __future__ import annotations

import pytest
import torch
from torchrl.envs.utils import check_env_specs

from helpers import play, scripted_actions
from torchrl_psmbpo.envs.factory import make_env, max_episode_steps, parse_task, termination_fn

TASKS = [
    "dmc:cartpole-swingup",
    "dmc:cheetah-run",
    "gym:HalfCheetah-v5",
    "gym:Hopper-v5",
    "metaworld:window-open-v3",
    "metaworld:reach-v3",
]


@pytest.mark.parametrize("task", TASKS)
def test_specs_and_common_interface(task):
    env = make_env(task, seed=0)
    check_env_specs(env)
    obs_spec = env.observation_spec["observation"]
    assert obs_spec.dtype == torch.float32 and len(obs_spec.shape) == 1
    assert env.action_spec.dtype == torch.float32
    assert torch.all(env.action_spec.space.low == -1)
    assert torch.all(env.action_spec.space.high == 1)
    td = env.rollout(4)
    assert td["observation"].shape == (4,) + tuple(obs_spec.shape)
    for key in ("reward", "done", "terminated", "truncated"):
        assert td["next", key].shape == (4, 1), key
    if task.startswith("metaworld"):
        assert td["next", "success"].dtype == torch.bool
        assert td["next", "success"].shape == (4, 1)
    else:
        assert "success" not in td["next"].keys()


def test_dmc_observation_is_fixed_concatenation():
    from torchrl.envs import DMControlEnv

    env = make_env("dmc:cartpole-swingup", seed=5)
    raw_env = DMControlEnv("cartpole", "swingup")
    raw_env.set_seed(5)
    # dm_control cartpole: position (3) + velocity (2), concatenated in sorted key order.
    assert env.observation_spec["observation"].shape == (5,)
    raw = raw_env.reset()
    torch.testing.assert_close(
        env.reset()["observation"], torch.cat([raw["position"], raw["velocity"]]).float()
    )


@pytest.mark.parametrize("task", ["dmc:cheetah-run", "gym:Hopper-v5", "metaworld:reach-v3"])
def test_seeding_reproduces_observations_and_rewards(task):
    env_a, env_b, env_c = make_env(task, seed=3), make_env(task, seed=3), make_env(task, seed=4)
    actions = scripted_actions(env_a, 8)
    a, b, c = play(env_a, actions), play(env_b, actions), play(env_c, actions)
    torch.testing.assert_close(a["observation"], b["observation"])
    torch.testing.assert_close(a["next", "reward"], b["next", "reward"])
    assert not torch.allclose(a["observation"][0], c["observation"][0])


@pytest.mark.parametrize(
    "task,limit",
    [("dmc:cartpole-balance", 1000), ("metaworld:reach-v3", 500), ("gym:Pendulum-v1", 200)],
)
def test_time_limit_is_truncation(task, limit):
    assert max_episode_steps(task) == limit
    env = make_env(task, seed=0)
    td = env.rollout(limit + 5, break_when_any_done=True)
    assert td.shape[0] == limit
    assert td["next", "truncated"][-1].item() and td["next", "done"][-1].item()
    assert not td["next", "terminated"].any()
    assert not td["next", "done"][:-1].any()


def test_hopper_falls_and_terminates_before_time_limit():
    env = make_env("gym:Hopper-v5", seed=0)
    falling = torch.tensor([1.0, -1.0, 1.0])  # a fixed torque pattern tips the hopper over
    td = play(env, falling.expand(200, 3))
    ends = td["next", "done"].squeeze(-1).nonzero()
    assert len(ends) > 0, "a hopper driven by a constant torque pattern should fall"
    td = td[: ends[0, 0] + 1]  # the first episode
    assert td.shape[0] < max_episode_steps("gym:Hopper-v5")
    assert td["next", "terminated"][-1].item()
    assert not td["next", "truncated"].any()
    assert termination_fn("gym:Hopper-v5")(
        td["observation"][-1], td["action"][-1], td["next", "observation"][-1]
    ).item()


@pytest.mark.parametrize(
    "task,steps",
    [
        ("gym:Hopper-v5", 400),
        ("gym:Walker2d-v5", 400),
        ("gym:Ant-v5", 300),
        ("gym:Humanoid-v5", 300),
        ("gym:InvertedPendulum-v5", 300),
        ("gym:InvertedDoublePendulum-v5", 300),
    ],
)
def test_termination_fn_matches_real_env(task, steps):
    env = make_env(task, seed=1)
    data = play(env, scripted_actions(env, steps, seed=1))
    fn = termination_fn(task)
    predicted = fn(data["observation"], data["action"], data["next", "observation"])
    assert predicted.shape == data["next", "terminated"].shape
    assert predicted.dtype == torch.bool
    assert torch.equal(predicted, data["next", "terminated"])
    if task != "gym:Ant-v5":  # random actions rarely flip the ant within a short run
        assert data["next", "terminated"].sum() >= 2
    # batched over any leading shape
    batched = fn(
        data["observation"].reshape(2, -1, data["observation"].shape[-1]),
        data["action"].reshape(2, -1, data["action"].shape[-1]),
        data["next", "observation"].reshape(2, -1, data["observation"].shape[-1]),
    )
    assert torch.equal(batched.reshape(-1, 1), predicted)


@pytest.mark.parametrize("task", ["dmc:cheetah-run", "metaworld:reach-v3", "gym:HalfCheetah-v5"])
def test_non_terminating_tasks_never_terminate(task):
    fn = termination_fn(task)
    out = fn(torch.randn(3, 4, 7), torch.randn(3, 4, 2), torch.randn(3, 4, 7) * 100)
    assert out.shape == (3, 4, 1) and not out.any()


@pytest.mark.parametrize(
    "task,fragments",
    [
        ("cartpole", ["Malformed task name 'cartpole'", "dmc:cartpole-swingup"]),
        ("dmc:", ["Malformed task name 'dmc:'", "empty"]),
        ("atari:Pong", ["Unknown suite 'atari'", "'dmc', 'gym', 'metaworld'"]),
        ("dmc:cartpole-swingupp", ["Unknown DeepMind Control task", "cartpole-swingup",
                                   "walker-walk", "Did you mean"]),
        ("metaworld:window-open-v9", ["Unknown Metaworld MT1 task", "window-open-v3", "reach-v3"]),
        ("gym:Hoper-v5", ["Unknown Gym environment id", "'gym:Hoper-v5'", "Hopper-v5"]),
    ],
)
def test_bad_task_names_raise_clear_errors(task, fragments):
    with pytest.raises(ValueError) as err:
        make_env(task)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value)[:300])


def _dmc_builds_and_steps(name: str) -> int:
    """Build, check specs and step ``dmc:<name>``; return its observation size."""
    env = make_env(f"dmc:{name}", seed=0)
    check_env_specs(env)
    obs_spec = env.observation_spec["observation"]
    assert obs_spec.dtype == torch.float32 and len(obs_spec.shape) == 1
    td = env.rollout(3)
    assert td["observation"].shape == (3,) + tuple(obs_spec.shape)
    assert td["next", "reward"].shape == (3, 1) and torch.isfinite(td["next", "reward"]).all()
    return int(obs_spec.shape[0])


def _one_task_per_domain() -> list[str]:
    from torchrl_psmbpo.envs.factory import dmc_tasks

    first: dict[str, str] = {}
    for name in dmc_tasks():
        first.setdefault(name.split("-", 1)[0], name)
    # the matrix-observation tasks of manipulator and stacker are these domains' first tasks
    return list(first.values())


@pytest.mark.parametrize("name", _one_task_per_domain())
def test_every_dmc_domain_builds_checks_and_steps(name):
    assert _dmc_builds_and_steps(name) > 0


@pytest.mark.slow
def test_every_dmc_task_builds_checks_and_steps():
    """All of dm_control.suite.ALL_TASKS (about 20 s here): `pytest -m slow tests/test_envs.py`."""
    from torchrl_psmbpo.envs.factory import dmc_tasks

    failed = {}
    for name in dmc_tasks():
        try:
            _dmc_builds_and_steps(name)
        except Exception as exc:  # collect them all: one run names every broken task
            failed[name] = f"{type(exc).__name__}: {exc}"[:200]
    assert not failed, failed


def test_dmc_matrix_observations_are_flattened_row_major():
    """manipulator's arm_pos is [8, 2]: flattened row-major into the sorted concatenation."""
    from torchrl.envs import DMControlEnv

    env = make_env("dmc:manipulator-bring_ball", seed=2)
    raw_env = DMControlEnv("manipulator", "bring_ball")
    raw_env.set_seed(2)
    raw = raw_env.reset()
    assert raw["arm_pos"].shape == (8, 2)
    expected = torch.cat([raw[k].reshape(-1) for k in sorted(raw_env.observation_spec.keys())])
    torch.testing.assert_close(env.reset()["observation"], expected.float())
    assert env.observation_spec["observation"].shape == expected.shape


def test_quadruped_numpy_shim_is_local_to_dm_control_quadruped():
    import numpy as np
    from dm_control.suite import quadruped

    had_in1d = hasattr(np, "in1d")
    make_env("dmc:quadruped-walk", seed=0).rollout(2)
    assert hasattr(np, "in1d") == had_in1d  # numpy itself is left as it was
    a, b = np.array([[1, 5], [3, 7]]), [3, 5]
    assert quadruped.np.in1d(a, b).tolist() == [False, True, True, False]
    assert quadruped.np.in1d(a, b, invert=True).tolist() == [True, False, False, True]
    assert quadruped.np.pi == np.pi


def test_dmc_error_lists_every_suite_task():
    from dm_control import suite

    with pytest.raises(ValueError) as err:
        parse_task("dmc:nope-nope")
    for domain, task in suite.ALL_TASKS:
        assert f"{domain}-{task}" in str(err.value)


def test_pixels_render_when_asked():
    env = make_env("dmc:cartpole-swingup", seed=0, from_pixels=True)
    try:
        td = env.rollout(2)
    except Exception as exc:  # pragma: no cover - depends on the machine's GL stack
        pytest.skip(f"no MuJoCo GL backend here: {exc}")
    assert td["pixels"].dtype == torch.uint8 and td["pixels"].shape[-1] == 3
    assert "pixels" not in make_env("dmc:cartpole-swingup", seed=0).rollout(1).keys()


def test_dmc_pixels_are_the_wrappers_frames_rendered_once_per_agent_step():
    """The kept frame equals what TorchRL's DMControlEnv(from_pixels=True) returns, at one
    render per agent step instead of one per repeated simulator step."""
    from torchrl.envs import DMControlEnv

    ours = make_env("dmc:cartpole-swingup", seed=3, from_pixels=True, action_repeat=4)
    try:
        theirs = DMControlEnv("cartpole", "swingup", from_pixels=True, pixels_only=False,
                              frame_skip=4)
        theirs.set_seed(3)
        ours.reset()
    except Exception as exc:  # pragma: no cover - depends on the machine's GL stack
        pytest.skip(f"no MuJoCo GL backend here: {exc}")
    physics = ours.base_env._env.physics
    render, calls = physics.render, []
    physics.render = lambda *a, **k: calls.append(1) or render(*a, **k)
    a, b = ours.reset(), theirs.reset()
    with theirs._env.physics.reset_context():  # the same start state (seeding paths differ)
        theirs._env.physics.set_state(physics.get_state())
    for action in torch.linspace(-1, 1, 5):
        a = ours.step(a.set("action", action.reshape(1)))
        b = theirs.step(b.set("action", action.reshape(1).double()))
        torch.testing.assert_close(a["next", "pixels"], b["next", "pixels"])
        a, b = a["next"], b["next"]
    assert len(calls) == 1 + 5  # the reset and one per agent step (theirs: 1 + 5 * 4)


def test_headless_gl_backend_falls_back_when_egl_is_missing():
    from torchrl_psmbpo.envs.factory import headless_gl_backend

    assert headless_gl_backend(lambda name: f"lib{name}.so.1") == "egl"
    assert headless_gl_backend(lambda name: "libOSMesa.so" if name == "OSMesa" else None) == "osmesa"
    assert headless_gl_backend(lambda name: None) == "disabled"


def test_missing_suite_names_the_extra_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "metaworld", None)  # import metaworld -> ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match=r"install the 'metaworld' extra .*psmbpo-components\[metaworld\]"):
        make_env("metaworld:reach-v3")
