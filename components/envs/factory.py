"""One environment factory for DeepMind Control, Gym (MuJoCo) and Metaworld tasks.

Every env it returns has the same interface, so the rest of the package never looks at the
suite: a single float32 ``"observation"`` vector, float32 actions in ``[-1, 1]``, ``"reward"``
of shape ``[1]``, ``"done"`` / ``"terminated"`` / ``"truncated"`` with the suite's time limit
reported as truncation, and (Metaworld) a per-step bool ``"success"``.
"""

from __future__ import annotations

import ctypes.util
import difflib
import functools
import os
import types
from typing import Any

import numpy
import torch
from tensordict import TensorDictBase
from torchrl.data import Binary, Bounded, Composite, Unbounded
from torchrl.envs import (
    ActionScaling,
    CatTensors,
    Compose,
    DoubleToFloat,
    EnvBase,
    FlattenObservation,
    Transform,
    TransformedEnv,
)
from torchrl.envs.gym_like import BaseInfoDictReader

from torchrl_psmbpo._checks import check_int
from torchrl_psmbpo.termination import GYM_TERMINATION_FNS, TerminationFn, never_terminates

__all__ = [
    "SUITES",
    "parse_task",
    "make_env",
    "termination_fn",
    "dmc_tasks",
    "metaworld_tasks",
    "max_episode_steps",
]

SUITES = ("dmc", "gym", "metaworld")
"""Accepted task prefixes: ``dmc:<domain>-<task>``, ``gym:<Id>``, ``metaworld:<task>``."""


def headless_gl_backend(find_library: Any = ctypes.util.find_library) -> str:
    """The ``MUJOCO_GL`` backend to default to on a machine without a display.

    EGL where its library is installed, else OSMesa where that is, else ``"disabled"``: training
    needs no rendering, and dm_control imported with ``MUJOCO_GL=egl`` on a machine without
    libEGL (a bare GPU node, say) fails at import, before any env exists. With ``"disabled"``
    only rendering (videos, ``recipes/record.py``) fails, with dm_control's "No OpenGL rendering
    backend is available".

    Examples:
        >>> headless_gl_backend(lambda name: None)
        'disabled'
        >>> headless_gl_backend(lambda name: "libOSMesa.so.8" if name == "OSMesa" else None)
        'osmesa'
    """
    for library, backend in (("EGL", "egl"), ("OSMesa", "osmesa")):
        if find_library(library):
            return backend
    return "disabled"


# Headless rendering: MuJoCo reads MUJOCO_GL when it first creates a GL context, and dm_control
# when it is imported; without a display, EGL where it is installed (a user's MUJOCO_GL wins).
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = headless_gl_backend()

DMC_EPISODE_STEPS = 1000
METAWORLD_EPISODE_STEPS = 500


_SUITE_MODULES = {"dmc": ("dm_control",), "gym": ("gymnasium",), "metaworld": ("metaworld", "gymnasium")}
"""The modules each suite's envs import; each suite is an extra of the install of the same name."""


def _require_suite(suite: str) -> None:
    """Raise one line naming the extra to install when a suite's simulator is missing."""
    for module in _SUITE_MODULES[suite]:
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            raise ModuleNotFoundError(
                f"{suite}: tasks need {module}, which is not installed: install the {suite!r} "
                f"extra (pip install 'psmbpo-components[{suite}]', or '.[{suite}]' from a "
                "checkout)",
                name=module,
            ) from None


def _bad_task(task: str, why: str, accepted: list[str] | tuple[str, ...]) -> ValueError:
    close = difflib.get_close_matches(task.split(":", 1)[-1], accepted, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    shown = ", ".join(accepted)
    return ValueError(f"{why}: {task!r}.{hint} Accepted: {shown}")


@functools.lru_cache(maxsize=None)
def dmc_tasks() -> tuple[str, ...]:
    """The ``<domain>-<task>`` names of ``dm_control.suite.ALL_TASKS``."""
    from dm_control import suite

    return tuple(f"{d}-{t}" for d, t in suite.ALL_TASKS)


@functools.lru_cache(maxsize=None)
def metaworld_tasks() -> tuple[str, ...]:
    """The Metaworld MT1 task names (``metaworld.ALL_V3_ENVIRONMENTS``)."""
    import metaworld

    return tuple(sorted(metaworld.ALL_V3_ENVIRONMENTS))


def _gym_ids() -> list[str]:
    import gymnasium

    return sorted(gymnasium.registry.keys())


def parse_task(task: str) -> tuple[str, str]:
    """Split and validate a task name.

    Args:
        task: ``"dmc:<domain>-<task>"``, ``"gym:<Id>"`` or ``"metaworld:<task>"``.

    Returns:
        ``(suite, name)``, e.g. ``("dmc", "cartpole-swingup")``.

    Raises:
        ValueError: naming the bad suite or task and listing what is accepted.
        ModuleNotFoundError: the suite's simulator is not installed (the message names the
            extra to install: ``dmc``, ``gym`` or ``metaworld``).

    Examples:
        >>> parse_task("dmc:cartpole-swingup")
        ('dmc', 'cartpole-swingup')
    """
    if not isinstance(task, str) or ":" not in task:
        raise ValueError(
            f"Malformed task name {task!r}: expected '<suite>:<task>' with suite in "
            f"{SUITES}, e.g. 'dmc:cartpole-swingup', 'gym:Hopper-v5', 'metaworld:reach-v3'."
        )
    suite, name = task.split(":", 1)
    if suite not in SUITES:
        raise ValueError(f"Unknown suite {suite!r} in task {task!r}. Accepted suites: {SUITES}.")
    if not name:
        raise ValueError(
            f"Malformed task name {task!r}: the task after '{suite}:' is empty."
        )
    _require_suite(suite)
    if suite == "dmc" and name not in dmc_tasks():
        raise _bad_task(task, "Unknown DeepMind Control task", dmc_tasks())
    if suite == "metaworld" and name not in metaworld_tasks():
        raise _bad_task(task, "Unknown Metaworld MT1 task", metaworld_tasks())
    if suite == "gym":
        import gymnasium

        if name not in gymnasium.registry:
            ids = [i for i in _gym_ids() if "/" not in i]
            raise _bad_task(task, "Unknown Gym environment id", ids)
    return suite, name


def max_episode_steps(task: str) -> int:
    """The suite's time limit for ``task`` (DMC 1000, Metaworld 500, Gym the registered one)."""
    suite, name = parse_task(task)
    if suite == "dmc":
        return DMC_EPISODE_STEPS
    if suite == "metaworld":
        return METAWORLD_EPISODE_STEPS
    import gymnasium

    steps = gymnasium.registry[name].max_episode_steps
    if steps is None:
        raise ValueError(f"Gym environment {name!r} registers no time limit.")
    return int(steps)


def termination_fn(task: str) -> TerminationFn:
    """The task's termination rule as a function of (obs, action, next_obs).

    Gym tasks that terminate (Hopper, Walker2d, Ant, Humanoid, InvertedPendulum,
    InvertedDoublePendulum) get their known rule; every other task (all of DMC and Metaworld,
    and Gym tasks that only truncate) never terminates.

    Args:
        task: a task name accepted by :func:`make_env`.

    Returns:
        ``fn(observation, action, next_observation) -> bool tensor [..., 1]``.

    Examples:
        >>> fn = termination_fn("gym:Hopper-v5")
        >>> fn(torch.zeros(4, 11), torch.zeros(4, 3), torch.zeros(4, 11)).shape
        torch.Size([4, 1])
    """
    suite, name = parse_task(task)
    if suite != "gym":
        return never_terminates
    family = name.split("/")[-1].rsplit("-v", 1)[0]
    return GYM_TERMINATION_FNS.get(family, never_terminates)


class _MetaworldInfoReader(BaseInfoDictReader):
    """Reads Metaworld's ``info["success"]`` (a Python float) into a bool ``"success"`` [1]."""

    def __init__(self) -> None:
        self._spec = Composite(success=Binary(n=1, shape=(1,), dtype=torch.bool), shape=())

    def __call__(self, info_dict: dict[str, Any], tensordict: TensorDictBase) -> TensorDictBase:
        success = bool(info_dict.get("success", 0.0) >= 1.0)
        tensordict.set("success", torch.tensor([success], device=tensordict.device))
        return tensordict

    @property
    def info_spec(self) -> Composite:
        return self._spec


class _RenderPhysics(Transform):
    """``"pixels"``: dm_control's physics rendered once per agent step, after the last repeat.

    TorchRL's ``DMControlEnv(from_pixels=True)`` wraps dm_control's pixel wrapper, which renders
    after every simulator step, so with ``frame_skip=k`` it renders k frames per agent step and
    keeps one (rendering is by far the most expensive part of a recorded episode on a CPU).
    This renders only the frame that is kept: the same image, at 1/k of the cost.
    """

    def __init__(self, height: int = 240, width: int = 320, camera_id: int = 0) -> None:
        super().__init__(in_keys=[], out_keys=["pixels"])
        self.height, self.width, self.camera_id = height, width, camera_id

    def _render(self, td: TensorDictBase) -> TensorDictBase:
        physics = self.parent.base_env._env.physics
        frame = physics.render(height=self.height, width=self.width, camera_id=self.camera_id)
        return td.set("pixels", torch.as_tensor(frame.copy(), device=td.device))

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self._render(next_tensordict)

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._render(tensordict_reset)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        observation_spec["pixels"] = Bounded(0, 255, (self.height, self.width, 3), dtype=torch.uint8,
                                             device=observation_spec.device)
        return observation_spec


class _NumpyWithIn1d(types.ModuleType):
    """numpy as one dm_control module sees it, plus ``in1d`` (removed in numpy 2.4).

    dm_control 1.0.28's quadruped domain calls ``np.in1d`` (``Physics._get_sensor_names``, at
    the first observation), which numpy deprecated in 2.0 and removed in 2.4, so every
    ``quadruped-*`` task fails with "module 'numpy' has no attribute 'in1d'". This stands in
    for the ``np`` name of that one module only (:func:`_dmc_numpy_compat`); numpy itself is
    not touched. ``in1d(a, b)`` is ``isin(ravel(a), b)``, numpy's own documented replacement.
    """

    def __init__(self) -> None:
        super().__init__("numpy")

    def __getattr__(self, name: str) -> Any:
        return getattr(numpy, name)

    @staticmethod
    def in1d(ar1, ar2, assume_unique: bool = False, invert: bool = False) -> numpy.ndarray:
        return numpy.isin(numpy.ravel(ar1), ar2, assume_unique=assume_unique, invert=invert)


def _dmc_numpy_compat(domain: str) -> None:
    """Give dm_control's quadruped module an ``np.in1d`` where numpy has none (numpy >= 2.4)."""
    if domain != "quadruped" or hasattr(numpy, "in1d"):
        return
    from dm_control.suite import quadruped

    if not isinstance(quadruped.np, _NumpyWithIn1d):
        quadruped.np = _NumpyWithIn1d()


def _dmc_env(
    name: str, seed: int | None, from_pixels: bool, device: Any, frame_skip: int
) -> EnvBase:
    from torchrl.envs import DMControlEnv

    domain, task = name.split("-", 1)
    _dmc_numpy_compat(domain)
    base = DMControlEnv(domain, task, from_pixels=False, device=device, frame_skip=frame_skip)
    obs_spec = base.observation_spec
    # Some entries are matrices (manipulator and stacker: arm_pos [8, 2], box_pos [n, 4]):
    # flatten each to a vector (row-major, as dm_control's own flat_observation does) first.
    flatten = [
        FlattenObservation(-len(obs_spec[key].shape), -1, in_keys=[key])
        for key in obs_spec.keys()
        if len(obs_spec[key].shape) > 1
    ]
    # CatTensors sorts the keys: the observation order is alphabetical in dm_control's names.
    transforms = [
        DoubleToFloat(), *flatten, CatTensors(in_keys=list(obs_spec.keys()), out_key="observation")
    ]
    if from_pixels:
        transforms.append(_RenderPhysics())
    return TransformedEnv(base, Compose(*transforms))


def _gym_env(
    name: str, seed: int | None, from_pixels: bool, device: Any, frame_skip: int
) -> EnvBase:
    from torchrl.envs import GymEnv

    return TransformedEnv(
        GymEnv(
            name, from_pixels=from_pixels, pixels_only=False, device=device,
            frame_skip=frame_skip,
        ),
        DoubleToFloat(),
    )


def _metaworld_wrapper_cls():
    from torchrl.envs import GymWrapper

    class MetaworldWrapper(GymWrapper):
        """GymWrapper whose ``set_seed`` reaches Metaworld's RNG.

        Metaworld's ``reset(seed=...)`` ignores the seed; its own ``seed()`` reseeds the RNG
        that draws the MT1 task (goal and object positions) at every reset.
        """

        def _set_seed(self, seed: int | None) -> None:
            if seed is not None:
                self._env.unwrapped.seed(int(seed))

    return MetaworldWrapper


def _metaworld_env(
    name: str, seed: int | None, from_pixels: bool, device: Any, frame_skip: int
) -> EnvBase:
    import gymnasium
    import metaworld  # noqa: F401  (registers the Meta-World/* ids)

    kwargs: dict[str, Any] = {"env_name": name, "seed": seed, "disable_env_checker": True}
    if from_pixels:
        kwargs["render_mode"] = "rgb_array"
    gym_env = gymnasium.make("Meta-World/MT1", **kwargs)
    base = _metaworld_wrapper_cls()(
        gym_env, from_pixels=from_pixels, pixels_only=False, device=device, frame_skip=frame_skip
    )
    base.set_info_dict_reader(_MetaworldInfoReader())
    # The declared bounds of dims 36-38 (the goal) are low == high == 0 while the values are
    # not: replace the observation spec with an unbounded one.
    obs_spec = base.observation_spec.clone().unlock_()
    old = obs_spec["observation"]
    obs_spec["observation"] = Unbounded(shape=old.shape, dtype=old.dtype, device=old.device)
    base.observation_spec = obs_spec
    return TransformedEnv(base, DoubleToFloat())


_BUILDERS = {"dmc": _dmc_env, "gym": _gym_env, "metaworld": _metaworld_env}


def make_env(
    task: str,
    seed: int | None = None,
    *,
    from_pixels: bool = False,
    device: torch.device | str = "cpu",
    action_repeat: int = 1,
) -> TransformedEnv:
    """Build a TorchRL env for a DMC, Gym or Metaworld task with the package's common interface.

    Args:
        task: ``"dmc:<domain>-<task>"`` (any pair of ``dm_control.suite.ALL_TASKS``, e.g.
            ``"dmc:cartpole-swingup"``), ``"gym:<Id>"`` (a registered gymnasium id, e.g.
            ``"gym:Hopper-v5"``) or ``"metaworld:<task>"`` (an MT1 task, e.g.
            ``"metaworld:window-open-v3"``).
        seed: seeds the env (same seed, same first observations and rewards under the same
            actions). ``None`` leaves it unseeded.
        from_pixels: also return rendered frames under ``"pixels"`` (for videos). Needs a
            working MuJoCo GL backend (set ``MUJOCO_GL=egl`` or ``osmesa``). Off by default.
        device: the env's device.
        action_repeat: repeat every action this many simulator steps and sum the rewards (the
            wrappers' ``frame_skip``); an episode then has ``max_episode_steps(task) //
            action_repeat`` agent steps. DMC learning curves are usually plotted against
            simulator steps, i.e. agent steps times ``action_repeat``.

    Returns:
        A :class:`~torchrl.envs.TransformedEnv` with a float32 ``"observation"`` vector,
        actions in ``[-1, 1]``, ``"reward"``, ``"done"``/``"terminated"``/``"truncated"``
        (time limit = truncation) and, for Metaworld, ``"success"``.

    Raises:
        ValueError: for an unknown suite or task, or a malformed name.
        ModuleNotFoundError: the suite's simulator is not installed (the message names the
            extra to install).

    Examples:
        >>> env = make_env("dmc:cartpole-swingup", seed=0)
        >>> td = env.rollout(3)
        >>> td["observation"].shape, td["observation"].dtype
        (torch.Size([3, 5]), torch.float32)
    """
    suite, name = parse_task(task)
    check_int("action_repeat", action_repeat)
    env = _BUILDERS[suite](name, seed, from_pixels, device, action_repeat)
    low, high = env.action_spec.space.low, env.action_spec.space.high
    if not (torch.all(low == -1) and torch.all(high == 1)):
        env.append_transform(ActionScaling())
    if seed is not None:
        env.set_seed(seed)
    return env
