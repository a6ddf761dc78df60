"""The SAC losses of N·M members at once, in the two forms ``PolicyEnsemble`` can run.

:func:`sac_losses` is the SAC v2 loss of TorchRL's :class:`~torchrl.objectives.SACLoss`
(clipped double-Q target with the entropy bonus, reparameterised actor loss, temperature
loss), written once for any leading batch shape: it only reduces over the last dims. The
two backends feed it:

* :class:`VmapBackend` calls it for ONE member inside ``torch.vmap`` over the stacked
  parameters (``TensorDict.from_modules`` + ``params.to_module(template)``), with
  ``randomness="different"``;
* :class:`BmmBackend` calls it ONCE on ``[K, b, ...]`` tensors, the networks being
  evaluated with batched matmuls over the same stacked parameters
  (:class:`~torchrl_psmbpo.policy._batched_mlp.BatchedNetwork`). Its update on a CPU does not go
  through here: :class:`~torchrl_psmbpo.policy._sac_step.SACStep` computes the same losses and
  gradients by hand (bit-identical; ``loss()`` and the action prior still use autograd).

No random numbers are drawn in here: the standard-normal noise of the two action samples
comes in as an input: sampling inside ``torch.vmap`` fails ("Cannot ask for different
inplace randomness on an unbatched tensor").

With an action prior (Marino & Yue; ``PolicyEnsemble(action_prior=True)``), SAC's entropy
term ``log pi(a|s)`` becomes the KL estimate ``log pi(a|s) - log p_a(a|s)`` in the actor loss
and in the critic's soft target, the temperature is tuned toward a target KL, and the prior
gets its own loss, the closed-form ``KL(pi || p_a)`` with gradient into the prior only (see
``docs/inference_perspective.md``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import torch
from tensordict import TensorDictBase
from torch import nn

from torchrl_psmbpo.policy._batched_mlp import BatchedNetwork
from torchrl_psmbpo.policy._sac_step import SACStep
from torchrl_psmbpo.policy._networks import (
    actor_network,
    critic_network,
    normal_kl,
    tanh_normal_log_prob,
    tanh_normal_rsample,
)

Tensor = torch.Tensor
LOSS_KEYS = ("loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy")
PRIOR_LOSS_KEYS = ("kl_prior", "loss_prior")
LOSS_FUNCTIONS = ("l2", "smooth_l1")


def _distance(pred: Tensor, target: Tensor, loss_function: str) -> Tensor:
    if loss_function == "l2":
        return nn.functional.mse_loss(pred, target, reduction="none")
    return nn.functional.smooth_l1_loss(pred, target, reduction="none")


def sac_losses(
    actor: Callable[[Tensor], tuple[Tensor, Tensor]],
    critics: Callable[[Tensor, Tensor, bool], Tensor],
    target_critics: Callable[[Tensor, Tensor], Tensor],
    log_alpha: Tensor,
    observation: Tensor,
    action: Tensor,
    next_observation: Tensor,
    reward: Tensor,
    not_terminated: Tensor,
    noise: Tensor,
    *,
    gamma: float,
    target_entropy: Tensor,
    loss_function: str = "l2",
    prior: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
    target_kl: Tensor | None = None,
) -> dict[str, Tensor]:
    """SAC losses for a batch ``[*E, b]`` of transitions (``*E`` any leading member dims).

    Args:
        actor: ``observation [*E, b, O] -> (loc, scale) [*E, b, A]``.
        critics: ``(observation, action, detach_params) -> Q [*E, 2, b]`` (both critics).
        target_critics: ``(observation, action) -> Q [*E, 2, b]`` with the target weights.
        log_alpha: ``[*E]`` log entropy temperatures.
        observation, action, next_observation: ``[*E, b, d]``.
        reward, not_terminated: ``[*E, b]`` (``not_terminated`` as 0./1. floats).
        noise: ``[*E, 2, b, A]`` standard normal draws: ``[..., 0, :, :]`` for the
            next-state action of the target, ``[..., 1, :, :]`` for the actor loss.
        gamma: discount.
        target_entropy: scalar target entropy.
        loss_function: ``"l2"`` or ``"smooth_l1"`` (the critic regression loss).
        prior: optional action prior ``observation [*E, b, O] -> (loc, scale) [*E, b, A]``
            of a ``TanhNormal``; ``None`` (default) is SAC's uniform prior and takes exactly
            the code path of plain SAC. With a prior, ``log pi`` becomes
            ``log pi - log p_a`` (both tanh-corrected, at the same pre-tanh sample) in the
            soft target and the actor loss, the temperature loss is
            ``log_alpha * (target_kl - KL)``, and ``loss_prior`` is the closed-form
            ``KL(pi || p_a)`` with the policy detached (gradient into the prior only).
        target_kl: scalar temperature target with a prior.

    Returns:
        ``loss_actor``, ``loss_qvalue``, ``loss_alpha`` (differentiable), ``alpha`` and
        ``entropy`` (detached), each of shape ``[*E]``; with a prior also ``loss_prior``
        (differentiable) and ``kl_prior`` (detached mean of the sampled KL estimate).
    """
    alpha = log_alpha.detach().exp().unsqueeze(-1)  # [*E, 1]
    with torch.no_grad():
        next_loc, next_scale = actor(next_observation)
        next_noise = noise[..., 0, :, :]
        next_action, next_log_prob = tanh_normal_rsample(next_loc, next_scale, next_noise)
        if prior is not None:  # log pi - log p_a at the same pre-tanh sample
            prior_next_loc, prior_next_scale = prior(next_observation)
            next_pre = next_loc + next_noise * next_scale
            next_log_prob = next_log_prob - tanh_normal_log_prob(prior_next_loc, prior_next_scale, next_pre)
        next_q = target_critics(next_observation, next_action)  # [*E, 2, b]
        next_value = (next_q - (alpha * next_log_prob).unsqueeze(-2)).min(-2).values
        target = reward + gamma * not_terminated * next_value  # [*E, b]

    q = critics(observation, action, False)  # [*E, 2, b]
    loss_qvalue = _distance(q, target.unsqueeze(-2).expand_as(q), loss_function).sum(-2).mean(-1)

    loc, scale = actor(observation)
    actor_noise = noise[..., 1, :, :]
    new_action, log_prob = tanh_normal_rsample(loc, scale, actor_noise)
    penalty = log_prob  # log pi, or log pi - log p_a with a prior
    if prior is not None:
        prior_loc, prior_scale = prior(observation)  # one forward: detached here, live below
        pre = loc + actor_noise * scale
        penalty = log_prob - tanh_normal_log_prob(prior_loc.detach(), prior_scale.detach(), pre)
    q_new = critics(observation, new_action, True).min(-2).values
    loss_actor = (alpha * penalty - q_new).mean(-1)

    penalty = penalty.detach()
    if prior is None:
        loss_alpha = (-log_alpha.unsqueeze(-1) * (penalty + target_entropy)).mean(-1)
    else:
        loss_alpha = (log_alpha.unsqueeze(-1) * (target_kl - penalty)).mean(-1)
    losses = {
        "loss_actor": loss_actor,
        "loss_qvalue": loss_qvalue,
        "loss_alpha": loss_alpha,
        "alpha": alpha.squeeze(-1),
        "entropy": -log_prob.detach().mean(-1),
    }
    if prior is not None:
        losses["kl_prior"] = penalty.mean(-1)
        losses["loss_prior"] = normal_kl(loc.detach(), scale.detach(), prior_loc, prior_scale).mean(-1)
    return losses


class _Backend(abc.ABC):
    """The interface both backends give the ensemble: every member's actor and action prior.

    A backend implements :meth:`_apply`; ``*_all`` runs every member on its own rows and
    ``*_at`` the chosen members, with the same ops. Both are built from the same arguments (the
    ensemble picks one by name, ``BACKENDS[backend](...)``).

    Args:
        actor_template: a :func:`make_sac_actor` module, the structure of every member's
            actor (its own parameter values are never used).
        critic_template: a :func:`make_sac_critic` module, same role.
        actor_params: the stacked actor parameters, batch ``[N, M]``.
        critic_params, target_params: the stacked critics, batch ``[N, M, 2]``.
        prior_template, prior_params: optional action prior (a :func:`make_sac_actor`
            module and its stacked parameters, batch ``[N, M]``).
    """

    def __init__(
        self,
        actor_template: nn.Module,
        critic_template: nn.Module,
        actor_params: TensorDictBase,
        critic_params: TensorDictBase,
        target_params: TensorDictBase,
        prior_template: nn.Module | None = None,
        prior_params: TensorDictBase | None = None,
    ) -> None:
        self.actor_template = actor_template
        self.critic_template = critic_template
        self.actor_params = actor_params
        self.critic_params = critic_params
        self.target_params = target_params
        self.prior_template = prior_template
        self.prior_params = prior_params

    @abc.abstractmethod
    def _apply(self, net: str, index: Tensor | None, observation: Tensor) -> tuple[Tensor, Tensor]:
        """``(loc, scale)`` of network ``net`` (``"actor"`` or ``"prior"``) of the members
        ``index`` (``None``: all ``K``, member k on row k) on ``observation [P, n, O]``."""

    def actor_all(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        """``observation [K, n, O]`` -> ``(loc, scale) [K, n, A]``, member k on row k."""
        return self._apply("actor", None, observation)

    def actor_at(self, index: Tensor, observation: Tensor) -> tuple[Tensor, Tensor]:
        """``observation [P, n, O]`` -> ``(loc, scale) [P, n, A]``, member ``index[p]`` on row p."""
        return self._apply("actor", index, observation)

    def prior_all(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        """The action prior's ``observation [K, n, O]`` -> ``(loc, scale) [K, n, A]``."""
        return self._apply("prior", None, observation)

    def prior_at(self, index: Tensor, observation: Tensor) -> tuple[Tensor, Tensor]:
        """The action prior of member ``index[p]`` on row p."""
        return self._apply("prior", index, observation)


class VmapBackend(_Backend):
    """Members as the TorchRL modules themselves, under ``torch.vmap`` over stacked params.

    Args:
        as :class:`_Backend`; each member runs in the templates, its parameters swapped in
        with ``TensorDict.to_module``.
    """

    name = "vmap"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._actor_net = actor_network(self.actor_template)
        self._critic_net = critic_network(self.critic_template)
        self._vmap_actor = torch.vmap(self._one_actor, randomness="different")
        if self.prior_template is not None:
            self._prior_net = actor_network(self.prior_template)
            self._vmap_prior = torch.vmap(self._one_prior, randomness="different")
        self._loss_impl = self._losses

    def _one_actor(self, params: TensorDictBase, observation: Tensor) -> tuple[Tensor, Tensor]:
        with params.to_module(self.actor_template):
            return self._actor_net(observation)

    def _one_prior(self, params: TensorDictBase, observation: Tensor) -> tuple[Tensor, Tensor]:
        with params.to_module(self.prior_template):
            return self._prior_net(observation)

    def _one_critic(self, params: TensorDictBase, observation: Tensor, action: Tensor) -> Tensor:
        with params.to_module(self.critic_template):
            return self._critic_net(observation, action).squeeze(-1)

    def _two_critics(self, params: TensorDictBase, observation: Tensor, action: Tensor) -> Tensor:
        return torch.vmap(self._one_critic, (0, None, None), randomness="different")(
            params, observation, action
        )

    def _apply(self, net: str, index: Tensor | None, observation: Tensor) -> tuple[Tensor, Tensor]:
        params = (self.actor_params if net == "actor" else self.prior_params).flatten(0, 1)
        run = self._vmap_actor if net == "actor" else self._vmap_prior
        return run(params if index is None else params[index], observation)

    def compile(self) -> None:
        """Run the loss computation under ``torch.compile``."""
        self._loss_impl = torch.compile(self._losses, dynamic=False)

    def losses(self, log_alpha: Tensor, *data: Tensor, **kwargs) -> dict[str, Tensor]:
        """Per-member losses ``[K]``: ``log_alpha [K]``, data ``[K, b, ...]`` (see :func:`sac_losses`)."""
        if self.prior_params is not None:
            kwargs["prior_params"] = self.prior_params.flatten(0, 1)
        return self._loss_impl(
            self.actor_params.flatten(0, 1),
            self.critic_params.flatten(0, 1),
            self.target_params.flatten(0, 1),
            log_alpha,
            *data,
            **kwargs,
        )

    def _losses(
        self,
        actor_params: TensorDictBase,
        critic_params: TensorDictBase,
        target_params: TensorDictBase,
        log_alpha: Tensor,
        *data: Tensor,
        prior_params: TensorDictBase | None = None,
        **kwargs,
    ) -> dict[str, Tensor]:
        """:func:`sac_losses` of every member under ``torch.vmap`` over the ``[K]``-stacked params.

        Args:
            actor_params, critic_params, target_params: the stacked parameters, batch ``[K]``
                (critics ``[K, 2]``).
            log_alpha, data: as :func:`sac_losses`, with a leading ``[K]``.
            prior_params: the action prior's stacked parameters (``None``: no prior).
            kwargs: the keyword arguments of :func:`sac_losses`.
        """

        def member(actor_p, critic_p, target_p, prior_p, log_alpha_k, *member_data):
            def critics(obs, act, detach):
                return self._two_critics(critic_p.detach() if detach else critic_p, obs, act)

            return sac_losses(
                lambda obs: self._one_actor(actor_p, obs),
                critics,
                lambda obs, act: self._two_critics(target_p, obs, act),
                log_alpha_k,
                *member_data,
                prior=None if prior_p is None else (lambda obs: self._one_prior(prior_p, obs)),
                **kwargs,
            )

        in_dims = (0, 0, 0, None if prior_params is None else 0, 0) + (0,) * len(data)
        return torch.vmap(member, in_dims, randomness="different")(
            actor_params, critic_params, target_params, prior_params, log_alpha, *data
        )


class BmmBackend(_Backend):
    """Members as batched matmuls over the stacked parameters (same math, no vmap).

    The stacked leaves are looked up once (``load_state_dict`` copies into them in place)
    and only flattened from ``[N, M(, 2), ...]`` to ``[K(·2), ...]`` per call, a view.

    Args:
        as :class:`_Backend`; of the templates only the structure (layer order, activations,
        ``NormalParamExtractor``) is used.
    """

    name = "bmm"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._actor_net = BatchedNetwork(actor_network(self.actor_template), ("module", "0", "module"))
        self._critic_net = BatchedNetwork(critic_network(self.critic_template), ("module",))
        actor_keys = [k for pair in self._actor_net.linear_keys for k in pair]
        critic_keys = [k for pair in self._critic_net.linear_keys for k in pair]
        self._actor_leaves = [self.actor_params.get(k) for k in actor_keys]
        self._critic_leaves = [self.critic_params.get(k) for k in critic_keys]
        self._target_leaves = [self.target_params.get(k) for k in critic_keys]
        self._prior_leaves: list[Tensor] | None = None
        if self.prior_template is not None:
            self._prior_net = BatchedNetwork(actor_network(self.prior_template), ("module", "0", "module"))
            prior_keys = [k for pair in self._prior_net.linear_keys for k in pair]
            self._prior_leaves = [self.prior_params.get(k) for k in prior_keys]
        self._loss_impl = self.losses_from_weights
        # the update's fast path (hand-written gradients); None: autograd (the action prior,
        # or networks other than ReLU MLPs)
        self.sac_step: SACStep | None = None
        if self.prior_template is None:
            self.sac_step = SACStep.build(
                self._actor_net, self._critic_net, self._actor_leaves, self._critic_leaves, self._target_leaves
            )

    def _actor_weights(self) -> list[Tensor]:
        return [p.flatten(0, 1) for p in self._actor_leaves]

    def _critic_forward(self, weights: list[Tensor], observation: Tensor, action: Tensor) -> Tensor:
        """``weights`` of ``2P`` critics (member-major), inputs ``[P, n, d]`` -> ``[P, 2, n]``."""
        x = torch.cat([observation, action], -1)
        p, n, d = x.shape
        x = x.unsqueeze(1).expand(p, 2, n, d).reshape(2 * p, n, d)
        return self._critic_net(weights, x).view(p, 2, n)

    def _prior_weights(self) -> list[Tensor]:
        return [p.flatten(0, 1) for p in self._prior_leaves]

    def _apply(self, net: str, index: Tensor | None, observation: Tensor) -> tuple[Tensor, Tensor]:
        weights = self._actor_weights() if net == "actor" else self._prior_weights()
        run = self._actor_net if net == "actor" else self._prior_net
        return run(weights if index is None else [w[index] for w in weights], observation)

    def compile(self) -> None:
        """Run the loss computation under ``torch.compile`` (it sees plain tensors only)."""
        self._loss_impl = torch.compile(self.losses_from_weights, dynamic=False)

    def losses(self, log_alpha: Tensor, *data: Tensor, **kwargs) -> dict[str, Tensor]:
        """Per-member losses ``[K]``: ``log_alpha [K]``, data ``[K, b, ...]`` (see :func:`sac_losses`)."""
        if self._prior_leaves is not None:
            kwargs["prior_w"] = self._prior_weights()
        return self._loss_impl(
            self._actor_weights(),
            [p.flatten(0, 2) for p in self._critic_leaves],
            [p.flatten(0, 2) for p in self._target_leaves],
            log_alpha,
            *data,
            **kwargs,
        )

    def losses_from_weights(
        self,
        actor_w: list[Tensor],
        critic_w: list[Tensor],
        target_w: list[Tensor],
        log_alpha: Tensor,
        *data: Tensor,
        prior_w: list[Tensor] | None = None,
        **kwargs,
    ) -> dict[str, Tensor]:
        """Per-member losses ``[K]`` from ``[K]``/``[2K]``-stacked weight lists."""
        critic_w_detached = [w.detach() for w in critic_w]

        def critics(obs, act, detach):
            return self._critic_forward(critic_w_detached if detach else critic_w, obs, act)

        if prior_w is not None:
            kwargs["prior"] = lambda obs: self._prior_net(prior_w, obs)
        return sac_losses(
            lambda obs: self._actor_net(actor_w, obs),
            critics,
            lambda obs, act: self._critic_forward(target_w, obs, act),
            log_alpha,
            *data,
            **kwargs,
        )


BACKENDS = {"vmap": VmapBackend, "bmm": BmmBackend}
