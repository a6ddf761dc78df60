"""A frozen copy of ``PolicyEnsemble.update`` (``backend="bmm"``) as it was at commit 7d7b145.

The reference that the faster update is checked against (``tests/test_policy_ensemble.py``,
``test_update_equals_the_frozen_update``) and timed against (``bench/speed/bench_policy_ensemble.py
--against-frozen``). The functions and classes below are copied verbatim from
``components/policy/{_batched_mlp,_networks,_update,ensemble}.py`` at commit 7d7b145 (only
what the update needs: no acting, no vmap backend, no input checks): do not edit them, and do
not share code with the live modules to remove the overlap that ``duplicates`` lists: the copy
is the point.

:class:`FrozenUpdate` takes a copy of a live ``PolicyEnsemble``'s state (parameters, target
critics, temperatures, Adam state) and updates its copy with the old code.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictParams
from torch import nn
from torchrl.modules.distributions.utils import safetanh_noeps

from torchrl_psmbpo.policy._networks import actor_network, critic_network, make_sac_actor, make_sac_critic

Tensor = torch.Tensor
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_LOG_2 = math.log(2.0)
LOSS_KEYS = ("loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy")
PRIOR_LOSS_KEYS = ("kl_prior", "loss_prior")


# ---------------------------------------------------------------- _networks.py (7d7b145)
def tanh_normal_rsample(loc: Tensor, scale: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
    pre = loc + noise * scale
    action = squash(pre)
    var = scale**2
    normal_lp = -((pre - loc) ** 2) / (2 * var) - scale.log() - _LOG_SQRT_2PI
    log_det = 2.0 * (_LOG_2 - pre - nn.functional.softplus(-2.0 * pre))
    return action, normal_lp.sum(-1) - log_det.sum(-1)


def tanh_normal_log_prob(loc: Tensor, scale: Tensor, pre: Tensor) -> Tensor:
    normal_lp = -((pre - loc) ** 2) / (2 * scale**2) - scale.log() - _LOG_SQRT_2PI
    log_det = 2.0 * (_LOG_2 - pre - nn.functional.softplus(-2.0 * pre))
    return normal_lp.sum(-1) - log_det.sum(-1)


def normal_kl(loc_p: Tensor, scale_p: Tensor, loc_q: Tensor, scale_q: Tensor) -> Tensor:
    ratio = (scale_p / scale_q) ** 2
    return 0.5 * (ratio + ((loc_p - loc_q) / scale_q) ** 2 - 1.0 - ratio.log()).sum(-1)


def squash(x: Tensor) -> Tensor:
    return safetanh_noeps(x)


# ---------------------------------------------------------------- _batched_mlp.py (7d7b145)
class BatchedReLUMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, *weights: Tensor) -> Tensor:
        layers = len(weights) // 2
        layer_inputs = []
        h = x
        for i in range(layers):
            w, b = weights[2 * i], weights[2 * i + 1]
            layer_inputs.append(h)
            h = torch.baddbmm(b.unsqueeze(-2), h, w.transpose(-1, -2))
            if i < layers - 1:
                h = h.relu_()  # the matmul output is ours: overwrite it
        ctx.layer_inputs = layer_inputs  # the ReLU outputs double as the backward's masks
        ctx.save_for_backward(*weights[0::2])
        return h

    @staticmethod
    def backward(ctx, grad: Tensor):
        ws = ctx.saved_tensors
        inputs = ctx.layer_inputs
        needs = ctx.needs_input_grad  # (x, w0, b0, w1, b1, ...)
        layers = len(ws)
        grads: list[Tensor | None] = [None] * (2 * layers)
        grad_x = None
        g = grad
        for i in reversed(range(layers)):
            if needs[1 + 2 * i]:
                grads[2 * i] = torch.bmm(g.transpose(-1, -2), inputs[i])  # [P, out, in]
            if needs[2 + 2 * i]:
                grads[2 * i + 1] = g.sum(-2)
            if i > 0:
                g = torch.bmm(g, ws[i])
                # d relu: zero where the layer input (a ReLU output) is 0; g is our own buffer
                torch.ops.aten.threshold_backward.grad_input(g, inputs[i], 0, grad_input=g)
            elif needs[0]:
                grad_x = torch.bmm(g, ws[0])
        ctx.layer_inputs = None
        return (grad_x, *grads)


class BatchedNetwork:
    def __init__(self, network: nn.Module, param_prefix: tuple[str, ...]) -> None:
        self.steps: list[tuple[str, object]] = []
        self._walk(network, param_prefix)
        self.linear_keys = [step[1] for step in self.steps if step[0] == "linear"]
        run = 0
        while run < len(self.steps) and self.steps[run][0] == "linear":
            nxt = run + 1
            if (
                nxt + 1 < len(self.steps)
                and self.steps[nxt][0] == "call"
                and type(self.steps[nxt][1]) is nn.ReLU
                and self.steps[nxt + 1][0] == "linear"
            ):
                run = nxt + 1
            else:
                run = nxt
                break
        self._fused_steps = run
        self._fused_linears = sum(1 for kind, _ in self.steps[:run] if kind == "linear")

    def _walk(self, module: nn.Module, key: tuple[str, ...]) -> None:
        if isinstance(module, nn.Linear):
            self.steps.append(("linear", (key + ("weight",), key + ("bias",))))
        elif not any(True for _ in module.parameters()):
            self.steps.append(("call", module))
        elif isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                self._walk(child, key + (name,))
        else:
            raise TypeError(type(module).__name__)

    def __call__(self, weights: Sequence[Tensor], *inputs: Tensor):
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, -1)
        start, i = 0, 0
        if self._fused_linears:
            i = 2 * self._fused_linears
            x = BatchedReLUMLP.apply(x, *weights[:i])
            start = self._fused_steps
        for kind, obj in self.steps[start:]:
            if kind == "linear":
                w, b = weights[i], weights[i + 1]
                i += 2
                x = torch.baddbmm(b.unsqueeze(-2), x, w.transpose(-1, -2))
            else:
                x = obj(x)
        return x


# ---------------------------------------------------------------- _update.py (7d7b145)
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
    if prior is not None:
        return _prior_losses(
            actor, critics, target_critics, prior, log_alpha, observation, action,
            next_observation, reward, not_terminated, noise,
            gamma=gamma, target_kl=target_kl, loss_function=loss_function,
        )
    alpha = log_alpha.detach().exp().unsqueeze(-1)  # [*E, 1]
    with torch.no_grad():
        next_loc, next_scale = actor(next_observation)
        next_action, next_log_prob = tanh_normal_rsample(next_loc, next_scale, noise[..., 0, :, :])
        next_q = target_critics(next_observation, next_action)  # [*E, 2, b]
        next_value = (next_q - (alpha * next_log_prob).unsqueeze(-2)).min(-2).values
        target = reward + gamma * not_terminated * next_value  # [*E, b]

    q = critics(observation, action, False)  # [*E, 2, b]
    loss_qvalue = _distance(q, target.unsqueeze(-2).expand_as(q), loss_function).sum(-2).mean(-1)

    loc, scale = actor(observation)
    new_action, log_prob = tanh_normal_rsample(loc, scale, noise[..., 1, :, :])
    q_new = critics(observation, new_action, True).min(-2).values
    loss_actor = (alpha * log_prob - q_new).mean(-1)

    log_prob = log_prob.detach()
    loss_alpha = (-log_alpha.unsqueeze(-1) * (log_prob + target_entropy)).mean(-1)
    return {
        "loss_actor": loss_actor,
        "loss_qvalue": loss_qvalue,
        "loss_alpha": loss_alpha,
        "alpha": alpha.squeeze(-1),
        "entropy": -log_prob.mean(-1),
    }


def _prior_losses(
    actor, critics, target_critics, prior, log_alpha, observation, action, next_observation,
    reward, not_terminated, noise, *, gamma, target_kl, loss_function,
) -> dict[str, Tensor]:
    alpha = log_alpha.detach().exp().unsqueeze(-1)  # [*E, 1]
    with torch.no_grad():
        next_loc, next_scale = actor(next_observation)
        next_noise = noise[..., 0, :, :]
        next_action, next_log_prob = tanh_normal_rsample(next_loc, next_scale, next_noise)
        prior_next_loc, prior_next_scale = prior(next_observation)
        next_pre = next_loc + next_noise * next_scale
        next_kl = next_log_prob - tanh_normal_log_prob(prior_next_loc, prior_next_scale, next_pre)
        next_q = target_critics(next_observation, next_action)  # [*E, 2, b]
        next_value = (next_q - (alpha * next_kl).unsqueeze(-2)).min(-2).values
        target = reward + gamma * not_terminated * next_value  # [*E, b]

    q = critics(observation, action, False)  # [*E, 2, b]
    loss_qvalue = _distance(q, target.unsqueeze(-2).expand_as(q), loss_function).sum(-2).mean(-1)

    loc, scale = actor(observation)
    actor_noise = noise[..., 1, :, :]
    new_action, log_prob = tanh_normal_rsample(loc, scale, actor_noise)
    prior_loc, prior_scale = prior(observation)  # one forward: detached here, live below
    pre = loc + actor_noise * scale
    kl = log_prob - tanh_normal_log_prob(prior_loc.detach(), prior_scale.detach(), pre)
    q_new = critics(observation, new_action, True).min(-2).values
    loss_actor = (alpha * kl - q_new).mean(-1)

    kl = kl.detach()
    loss_alpha = (log_alpha.unsqueeze(-1) * (target_kl - kl)).mean(-1)
    loss_prior = normal_kl(loc.detach(), scale.detach(), prior_loc, prior_scale).mean(-1)
    return {
        "loss_actor": loss_actor,
        "loss_qvalue": loss_qvalue,
        "loss_alpha": loss_alpha,
        "alpha": alpha.squeeze(-1),
        "entropy": -log_prob.detach().mean(-1),
        "kl_prior": kl.mean(-1),
        "loss_prior": loss_prior,
    }


class BmmBackend:
    name = "bmm"

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
        self._actor_net = BatchedNetwork(actor_network(actor_template), ("module", "0", "module"))
        self._critic_net = BatchedNetwork(critic_network(critic_template), ("module",))
        actor_keys = [k for pair in self._actor_net.linear_keys for k in pair]
        critic_keys = [k for pair in self._critic_net.linear_keys for k in pair]
        self._actor_leaves = [actor_params.get(k) for k in actor_keys]
        self._critic_leaves = [critic_params.get(k) for k in critic_keys]
        self._target_leaves = [target_params.get(k) for k in critic_keys]
        self._prior_leaves: list[Tensor] | None = None
        if prior_template is not None:
            self._prior_net = BatchedNetwork(actor_network(prior_template), ("module", "0", "module"))
            prior_keys = [k for pair in self._prior_net.linear_keys for k in pair]
            self._prior_leaves = [prior_params.get(k) for k in prior_keys]
        self._loss_impl = self.losses_from_weights

    def _actor_weights(self) -> list[Tensor]:
        return [p.flatten(0, 1) for p in self._actor_leaves]

    def _critic_forward(self, weights: list[Tensor], observation: Tensor, action: Tensor) -> Tensor:
        x = torch.cat([observation, action], -1)
        p, n, d = x.shape
        x = x.unsqueeze(1).expand(p, 2, n, d).reshape(2 * p, n, d)
        return self._critic_net(weights, x).view(p, 2, n)

    def _prior_weights(self) -> list[Tensor]:
        return [p.flatten(0, 1) for p in self._prior_leaves]

    def compile(self) -> None:
        self._loss_impl = torch.compile(self.losses_from_weights, dynamic=False)

    def losses(self, log_alpha: Tensor, *data: Tensor, **kwargs) -> dict[str, Tensor]:
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


# ---------------------------------------------------------------- ensemble.py (7d7b145)
class FrozenUpdate(nn.Module):
    """The old ``PolicyEnsemble.update`` on a copy of ``ens``'s state.

    Args:
        ens: a live ``PolicyEnsemble`` (any version with the same ``state_dict`` layout and
            hyperparameter attributes); its parameters, target critics, temperatures and Adam
            state are copied (later updates of either do not touch the other).
        compile: run the old loss computation under ``torch.compile`` (the old option).
    """

    def __init__(self, ens: nn.Module, compile: bool = False) -> None:
        super().__init__()
        self._shape = torch.Size(ens.ensemble_shape)
        self.observation_dim, self.action_dim = ens.observation_dim, ens.action_dim
        self.gamma, self.tau = ens.gamma, ens.tau
        self.grad_clip_norm, self.loss_function = ens.grad_clip_norm, ens.loss_function
        self.action_prior = ens.action_prior
        self.device = ens.device
        hidden = dict(activation=ens.activation, device=ens.device)
        actor = make_sac_actor(ens.observation_dim, ens.action_dim, ens.actor_hidden, scale_lb=ens.scale_lb, **hidden)
        critic = make_sac_critic(ens.observation_dim, ens.action_dim, ens.critic_hidden, **hidden)
        self.actor_params = TensorDictParams(ens.actor_params.data.clone())
        self.critic_params = TensorDictParams(ens.critic_params.data.clone())
        self.target_critic_params = TensorDictParams(ens.target_critic_params.data.clone(), no_convert=True)
        self.log_alpha = nn.Parameter(ens.log_alpha.detach().clone())
        self.register_buffer("target_entropy", ens.target_entropy.clone())
        prior = self.prior_params = None
        if self.action_prior:
            prior = make_sac_actor(
                ens.observation_dim, ens.action_dim, ens.prior_hidden, scale_lb=ens.scale_lb, **hidden
            )
            self.prior_params = TensorDictParams(ens.prior_params.data.clone())
            self.register_buffer("target_kl", ens.target_kl.clone())
        self._backend = BmmBackend(
            actor, critic, self.actor_params, self.critic_params, self.target_critic_params,
            prior_template=prior, prior_params=self.prior_params,
        )
        self._actor_leaves = list(self.actor_params.values(True, True))
        self._critic_leaves = list(self.critic_params.values(True, True))
        self._target_leaves = [self.target_critic_params.get(k) for k in self.critic_params.keys(True, True)]
        groups = [
            {"params": self._actor_leaves, "lr": ens.optimizer.param_groups[0]["lr"]},
            {"params": self._critic_leaves, "lr": ens.optimizer.param_groups[1]["lr"]},
            {"params": [self.log_alpha], "lr": ens.optimizer.param_groups[2]["lr"]},
        ]
        self._prior_leaves: list[Tensor] = []
        if self.action_prior:
            self._prior_leaves = list(self.prior_params.values(True, True))
            groups.append({"params": self._prior_leaves, "lr": ens.optimizer.param_groups[3]["lr"]})
        fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(groups, **({"fused": True} if fused else {"foreach": True}))
        self.optimizer.load_state_dict(copy.deepcopy(ens.optimizer.state_dict()))
        if compile:
            self._backend.compile()

    @property
    def num_members(self) -> int:
        return self._shape.numel()

    def _unpack(self, batch: TensorDictBase) -> tuple[list[Tensor], int]:
        shape = batch.batch_size
        size = shape[2:].numel()
        k = self.num_members
        out = []
        for key, dim in (
            ("observation", self.observation_dim),
            ("action", self.action_dim),
            (("next", "observation"), self.observation_dim),
        ):
            value = batch.get(key)
            out.append(value.to(self.device, self.log_alpha.dtype).reshape(k, size, dim))
        reward = batch.get(("next", "reward")).to(self.device, self.log_alpha.dtype).reshape(k, size)
        terminated = batch.get(("next", "terminated")).to(self.device).reshape(k, size)
        not_terminated = (~terminated.bool()).to(self.log_alpha.dtype)
        return [*out, reward, not_terminated], size

    def _check_noise(self, noise: Tensor | None, size: int) -> Tensor:
        shape = (*self._shape, 2, size, self.action_dim)
        if noise is None:
            return torch.randn(shape, device=self.device, dtype=self.log_alpha.dtype)
        return noise.to(self.device, self.log_alpha.dtype)

    def _losses(self, batch: TensorDictBase, noise: Tensor | None) -> dict[str, Tensor]:
        data, size = self._unpack(batch)
        noise = self._check_noise(noise, size).flatten(0, 1)
        return self._backend.losses(
            self.log_alpha.flatten(),
            *data,
            noise,
            gamma=self.gamma,
            target_entropy=self.target_entropy,
            loss_function=self.loss_function,
            **({"target_kl": self.target_kl} if self.action_prior else {}),
        )

    def _as_tensordict(self, losses: dict[str, Tensor], detach: bool = False) -> TensorDict:
        return TensorDict(
            {
                key: (losses[key].detach() if detach else losses[key]).view(self._shape)
                for key in (*LOSS_KEYS, *PRIOR_LOSS_KEYS)
                if key in losses
            },
            batch_size=self._shape,
        )

    def update(self, batch: TensorDictBase, noise: Tensor | None = None) -> TensorDict:
        losses = self._losses(batch, noise)
        total = losses["loss_actor"].sum() + losses["loss_qvalue"].sum() + losses["loss_alpha"].sum()
        if self.action_prior:
            total = total + losses["loss_prior"].sum()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_clip_norm is not None:
            self._clip_per_member(self._actor_leaves)
            self._clip_per_member(self._critic_leaves)
            if self.action_prior:
                self._clip_per_member(self._prior_leaves)
        self.optimizer.step()
        with torch.no_grad():  # target <- target + tau (critic - target), all tensors at once
            torch._foreach_lerp_(self._target_leaves, self._critic_leaves, self.tau)
        return self._as_tensordict(losses, detach=True)

    def _clip_per_member(self, params: list[Tensor]) -> None:
        ens_dims = 2
        grads = [p.grad for p in params if p.grad is not None]
        sq = sum(g.pow(2).flatten(ens_dims).sum(-1) for g in grads)
        coef = (self.grad_clip_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(*coef.shape, *([1] * (g.ndim - ens_dims))))
