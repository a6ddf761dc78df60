"""The TorchRL networks of one SAC member, and the batched forms the ensemble runs them in.

One member of :class:`torchrl_psmbpo.policy.ensemble.PolicyEnsemble` is a plain TorchRL SAC
agent: a :class:`~torchrl.modules.ProbabilisticActor` with a ``TanhNormal`` head and two
:class:`~torchrl.modules.ValueOperator` critics, built here. The ensemble stacks the
parameters of N·M such members with :meth:`tensordict.TensorDict.from_modules` and runs
them in one of two ways (``backend``):

* ``"vmap"``: ``torch.vmap`` over ``params.to_module(template)`` -- the TorchRL modules
  themselves, called once per member inside vmap;
* ``"bmm"``: the same module graph, with every ``nn.Linear`` replaced by one
  ``torch.baddbmm`` over the stacked weights; the parameter-free modules (activations,
  ``NormalParamExtractor``) are called as they are
  (:class:`torchrl_psmbpo.policy._batched_mlp.BatchedNetwork`).

Both read the very same stacked parameter tensors, so a member exported with
:func:`load_member` is the module the ensemble trains.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded
from torchrl.envs.utils import ExplorationType
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.modules.distributions.utils import safetanh_noeps

Tensor = torch.Tensor

# TorchRL's SAC example (sota-implementations/sac) maps the scale with a softplus biased to
# give 1.0 at 0 and bounds it below by 0.1; we take the same.
SCALE_MAPPING = "biased_softplus_1.0"
SCALE_LB = 0.1
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_LOG_2 = math.log(2.0)


def make_sac_actor(
    observation_dim: int,
    action_dim: int,
    hidden: Sequence[int] = (256, 256),
    *,
    activation: type[nn.Module] = nn.ReLU,
    scale_lb: float = SCALE_LB,
    device: torch.device | str | None = None,
) -> ProbabilisticActor:
    """One SAC actor: an MLP giving ``loc`` and ``scale`` of a ``TanhNormal`` on [-1, 1].

    Args:
        observation_dim: size of the ``"observation"`` vector.
        action_dim: size of the ``"action"`` vector.
        hidden: widths of the hidden layers.
        activation: activation class between the layers.
        scale_lb: lower bound of the Normal scale (before the tanh).
        device: where the parameters live.

    Returns:
        A :class:`~torchrl.modules.ProbabilisticActor` reading ``"observation"`` and writing
        ``"loc"``, ``"scale"`` and ``"action"``; it samples unless an exploration type other
        than RANDOM is set (see :func:`torchrl.envs.utils.set_exploration_type`).

    Examples:
        >>> actor = make_sac_actor(3, 1, (32, 32))
        >>> actor(TensorDict({"observation": torch.zeros(3)}))["action"].shape
        torch.Size([1])
    """
    net = nn.Sequential(
        MLP(
            in_features=observation_dim,
            out_features=2 * action_dim,
            num_cells=list(hidden),
            activation_class=activation,
            device=device,
        ),
        NormalParamExtractor(scale_mapping=SCALE_MAPPING, scale_lb=scale_lb),
    )
    return ProbabilisticActor(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        out_keys=["action"],
        spec=Bounded(-1.0, 1.0, shape=(action_dim,), device=device),
        distribution_class=TanhNormal,
        distribution_kwargs={"low": -1.0, "high": 1.0},
        default_interaction_type=ExplorationType.RANDOM,
    )


def make_sac_critic(
    observation_dim: int,
    action_dim: int,
    hidden: Sequence[int] = (256, 256),
    *,
    activation: type[nn.Module] = nn.ReLU,
    device: torch.device | str | None = None,
) -> ValueOperator:
    """One Q critic: an MLP on ``cat(observation, action)`` writing ``"state_action_value"``.

    Examples:
        >>> critic = make_sac_critic(3, 1, (32, 32))
        >>> td = TensorDict({"observation": torch.zeros(3), "action": torch.zeros(1)})
        >>> critic(td)["state_action_value"].shape
        torch.Size([1])
    """
    net = MLP(
        in_features=observation_dim + action_dim,
        out_features=1,
        num_cells=list(hidden),
        activation_class=activation,
        device=device,
    )
    return ValueOperator(net, in_keys=["observation", "action"])


def actor_network(actor: ProbabilisticActor) -> nn.Module:
    """The tensor-to-(loc, scale) network inside an actor from :func:`make_sac_actor`."""
    return actor.module[0].module


def critic_network(critic: ValueOperator) -> nn.Module:
    """The ``(observation, action) -> value`` MLP inside a critic from :func:`make_sac_critic`."""
    return critic.module


def load_member(module: nn.Module, params: TensorDictBase) -> nn.Module:
    """Copy one member's parameters (no batch dims) into a plain module, in place."""
    with torch.no_grad():
        TensorDict.from_module(module).data.copy_(params.data)
    return module


def tanh_normal_rsample(loc: Tensor, scale: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
    """Reparameterised sample and log-probability of TorchRL's ``TanhNormal`` on [-1, 1].

    Computes exactly what ``TanhNormal(loc, scale).rsample_and_log_prob()`` computes when
    its standard-normal draw is ``noise``; nothing random happens here, so it runs inside
    ``torch.vmap`` (where sampling fails: "Cannot ask for different inplace randomness on an
    unbatched tensor").

    Returns:
        ``action`` (same shape as ``loc``) and ``log_prob`` (last dim summed out).
    """
    pre = loc + noise * scale
    action = squash(pre)
    var = scale**2
    normal_lp = -((pre - loc) ** 2) / (2 * var) - scale.log() - _LOG_SQRT_2PI
    log_det = 2.0 * (_LOG_2 - pre - nn.functional.softplus(-2.0 * pre))
    return action, normal_lp.sum(-1) - log_det.sum(-1)


def tanh_normal_log_prob(loc: Tensor, scale: Tensor, pre: Tensor) -> Tensor:
    """Log-density of ``TanhNormal(loc, scale)`` on [-1, 1] at the action ``tanh(pre)``.

    Takes the pre-tanh point ``pre`` (not the action), so that no ``atanh`` of a clamped
    action is needed: the density is the Normal's at ``pre`` minus ``log |d tanh / d pre|``,
    the same change of variables as :func:`tanh_normal_rsample`. For two tanh-Normals
    evaluated at the same ``pre`` the Jacobian terms cancel, which is why the KL between them
    equals the KL between the two Normals before the tanh.

    Args:
        loc, scale: ``[..., A]`` parameters of the Normal before the tanh.
        pre: ``[..., A]`` pre-tanh point (broadcasts with ``loc``).

    Returns:
        ``[...]``: the log-density, last dim summed out.

    Examples:
        >>> loc, scale, noise = torch.zeros(4, 2), torch.ones(4, 2), torch.randn(4, 2)
        >>> _, lp = tanh_normal_rsample(loc, scale, noise)
        >>> torch.allclose(tanh_normal_log_prob(loc, scale, loc + noise * scale), lp)
        True
    """
    normal_lp = -((pre - loc) ** 2) / (2 * scale**2) - scale.log() - _LOG_SQRT_2PI
    log_det = 2.0 * (_LOG_2 - pre - nn.functional.softplus(-2.0 * pre))
    return normal_lp.sum(-1) - log_det.sum(-1)


def normal_kl(loc_p: Tensor, scale_p: Tensor, loc_q: Tensor, scale_q: Tensor) -> Tensor:
    """Closed-form ``KL(N(loc_p, scale_p) || N(loc_q, scale_q))`` of diagonal Normals.

    The tanh is a bijection, so this is also the KL between the two tanh-Normals built
    on these Normals.

    Returns:
        ``[...]``: the KL, last (action) dim summed out.

    Examples:
        >>> float(normal_kl(torch.zeros(3), torch.ones(3), torch.zeros(3), torch.ones(3)))
        0.0
    """
    ratio = (scale_p / scale_q) ** 2
    return 0.5 * (ratio + ((loc_p - loc_q) / scale_q) ** 2 - 1.0 - ratio.log()).sum(-1)


def squash(x: Tensor) -> Tensor:
    """TorchRL's safe tanh (clamped to +-(1 - resolution)): ``TanhNormal``'s transform.

    ``squash(loc)`` is ``TanhNormal.deterministic_sample``.
    """
    return safetanh_noeps(x)
