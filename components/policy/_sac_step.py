"""One SAC update of every member with hand-written gradients: the ``bmm`` backend's fast path.

:class:`SACStep` computes what ``sac_losses`` + ``backward()`` compute for the ``bmm`` backend
(plain SAC: no action prior; ReLU MLPs; TorchRL's ``biased_softplus`` scale mapping), with
no autograd graph, and writes every gradient straight into the parameters' ``.grad``:

* the networks run on fewer, larger matmuls: the actor's forward takes the next and the
  current observations as one ``[K, 2b]`` batch, and the critics' forward takes the
  critic-loss inputs ``(s, a)`` and the actor-loss inputs ``(s, a~)`` as one ``[2K, 2b]``
  batch, whose backward (weight gradients from the first ``b`` rows, input gradients for
  the last ``b``) is one pass;
* the elementwise backward (tanh-Normal log-probability, scale mapping, losses) is the
  sequence of ops autograd's engine runs for ``sac_losses``, written out (same ops, same
  operands, same accumulation order), so the results are bit-identical to the autograd
  update (``tests/test_policy_ensemble.py::test_update_equals_the_frozen_update``);
* the large buffers (activations, gradients flowing back, the critics' input batch) live in
  a workspace kept between updates and are written with ``out=`` ops: no allocation, no
  first-touch page faults per update; weight and bias gradients are written into the
  parameters' own ``.grad`` tensors (allocated once).

The matmul splits were chosen to keep every matmul's operands the same rows, columns and
reduction length as the autograd path's (merged rows and row slices give the same bits on
MKL; a matmul over a narrower column slice or a transposed product would not), and the
elementwise ops run on tensors of the autograd path's shapes (a vectorised and a scalar tail
loop of a transcendental can differ in the last bit, and where the tail falls depends on
the shape). See ``docs/policy_ensemble.md``, "Speed of the update".
"""

from __future__ import annotations

import torch
from torch.nn.functional import mse_loss, smooth_l1_loss, softplus

from torchrl_psmbpo.policy._batched_mlp import BatchedNetwork
from torchrl_psmbpo.policy._networks import _LOG_2, _LOG_SQRT_2PI

Tensor = torch.Tensor
_softplus_backward = torch.ops.aten.softplus_backward
_threshold_backward = torch.ops.aten.threshold_backward.grad_input
_mse_backward = torch.ops.aten.mse_loss_backward.grad_input
_smooth_l1_backward = torch.ops.aten.smooth_l1_loss_backward.grad_input
_CHUNK_BYTES = 2 << 20


def _relu_linears(net: BatchedNetwork) -> bool:
    """True when ``net`` is ``Linear (ReLU Linear)*`` followed by parameter-free steps only."""
    return net._fused_linears == len(net.linear_keys)


class _Plan:
    """The workspace of one batch shape: buffers, and the views every update reads and writes."""


class SACStep:
    """Losses and gradients of one SAC update of K members, without autograd.

    Built by :meth:`build`, which returns ``None`` when the networks are not the shape this
    path is written for (the caller then uses autograd).

    Args:
        actor_net, critic_net: the backend's :class:`BatchedNetwork` s.
        actor_leaves, critic_leaves, target_leaves: the stacked parameter leaves in
            ``[w0, b0, w1, b1, ...]`` order, ``[N, M, ...]`` (critics ``[N, M, 2, ...]``).
        scale_bias, scale_min, scale_lb: the actor head's ``softplus(x + scale_bias) +
            scale_min`` mapping and its lower bound (``NormalParamExtractor``).
    """

    def __init__(
        self,
        actor_net: BatchedNetwork,
        critic_net: BatchedNetwork,
        actor_leaves: list[Tensor],
        critic_leaves: list[Tensor],
        target_leaves: list[Tensor],
        scale_bias: float,
        scale_min: float,
        scale_lb: float,
    ) -> None:
        self.scale_bias, self.scale_min, self.scale_lb = scale_bias, scale_min, scale_lb
        self._leaves = [*actor_leaves, *critic_leaves]
        self._n_actor = len(actor_leaves)
        with torch.no_grad():  # views of the live parameters (updated in place), made once
            self._actor = self._weights(actor_leaves, 2)
            self._critic = self._weights(critic_leaves, 3)
            self._target = self._weights(target_leaves, 3)
        # gradients are written here; .grad points at these (re-attached if zero_grad dropped them)
        self._grad_buffers = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in self._leaves]
        self._actor_grads = [g.flatten(0, 1) for g in self._grad_buffers[: self._n_actor]]
        self._critic_grads = [g.flatten(0, 2) for g in self._grad_buffers[self._n_actor :]]
        self._plan: _Plan | None = None

    @classmethod
    def build(
        cls, actor_net: BatchedNetwork, critic_net: BatchedNetwork, actor_leaves, critic_leaves, target_leaves
    ) -> SACStep | None:
        """A :class:`SACStep` for these networks, or ``None`` if they are not ReLU MLPs with
        TorchRL's biased-softplus ``NormalParamExtractor`` head (actor) and no head (critic)."""
        from tensordict.nn import NormalParamExtractor
        from tensordict.nn.utils import biased_softplus

        if not (_relu_linears(actor_net) and _relu_linears(critic_net)):
            return None
        actor_rest = actor_net.steps[actor_net._fused_steps:]
        if critic_net.steps[critic_net._fused_steps:] or len(actor_rest) != 1:
            return None
        head = actor_rest[0][1]
        if type(head) is not NormalParamExtractor or type(head.scale_mapping) is not biased_softplus:
            return None
        return cls(
            actor_net, critic_net, actor_leaves, critic_leaves, target_leaves,
            head.scale_mapping.bias, head.scale_mapping.min_val, head.scale_lb,
        )

    @staticmethod
    def _weights(leaves: list[Tensor], dims: int) -> list[tuple[Tensor, Tensor, Tensor]]:
        """``(bias [P, 1, out], weight [P, out, in], weight^T [P, in, out])`` views per layer."""
        flat = [p.detach().flatten(0, dims - 1) for p in leaves]
        return [(flat[i + 1].unsqueeze(-2), flat[i], flat[i].transpose(-1, -2)) for i in range(0, len(flat), 2)]

    # ------------------------------------------------------------------ workspace
    def _get_plan(self, k: int, b: int, obs_dim: int, act_dim: int, like: Tensor) -> _Plan:
        key = (k, b, obs_dim, act_dim, like.dtype, like.device)
        if self._plan is not None and self._plan.key == key:
            return self._plan
        self._plan = None  # free the old buffers first
        empty = lambda *shape: torch.empty(shape, dtype=like.dtype, device=like.device)  # noqa: E731
        p = _Plan()
        p.key = key
        rows, next_rows, rows_2 = slice(b, 2 * b), slice(0, b), slice(None)
        # actor: next and current observations as one batch [K, 2b]
        p.actor_in = empty(k, 2 * b, obs_dim)
        p.actor_in_next, p.actor_in_now = p.actor_in[:, next_rows], p.actor_in[:, rows]
        p.actor_fwd, actor_acts = self._forward_plan(self._actor, p.actor_in, empty)
        out = actor_acts[-1]
        p.next_loc, p.next_s = out[:, next_rows, :act_dim], out[:, next_rows, act_dim:]
        p.loc, p.s = out[:, rows, :act_dim], out[:, rows, act_dim:]
        # target critics: [2K, b]
        p.target_in = empty(k, 2, b, obs_dim + act_dim)
        p.target_in_obs, p.target_in_act = p.target_in[..., :obs_dim], p.target_in[..., obs_dim:]
        p.target_fwd, target_acts = self._forward_plan(self._target, p.target_in.view(2 * k, b, -1), empty)
        p.next_q = target_acts[-1].view(k, 2, b)
        # critics: (s, a) and (s, a~) as one batch [2K, 2b]
        p.critic_in = empty(k, 2, 2 * b, obs_dim + act_dim)
        p.critic_in_obs = (p.critic_in[:, :, next_rows, :obs_dim], p.critic_in[:, :, rows, :obs_dim])
        p.critic_in_act, p.critic_in_new = p.critic_in[:, :, next_rows, obs_dim:], p.critic_in[:, :, rows, obs_dim:]
        p.critic_fwd, critic_acts = self._forward_plan(self._critic, p.critic_in.view(2 * k, 2 * b, -1), empty)
        q_all = critic_acts[-1].view(k, 2, 2 * b)
        p.q, p.q_new = q_all[:, :, next_rows], q_all[:, :, rows]
        # backward: d q of both passes, the critics back to their weights (from (s, a)) and to a~
        p.d_q = empty(k, 2, 2 * b)
        p.d_q_loss, p.d_q_new = p.d_q[:, :, next_rows], p.d_q[:, :, rows]
        p.d_critic_in = empty(2 * k, b, obs_dim + act_dim)
        p.critic_bwd = self._backward_plan(
            self._critic, self._critic_grads, critic_acts, p.d_q.view(2 * k, 2 * b, 1), rows_2, next_rows,
            empty, input_rows=rows, input_grad=p.d_critic_in,
        )
        p.d_actor_out = empty(k, b, 2 * act_dim)
        p.actor_bwd = self._backward_plan(
            self._actor, self._actor_grads, actor_acts, p.d_actor_out, rows, rows_2, empty
        )
        # constants of the backward: d mean(x) / d x = 1 / b, as autograd computes it
        p.mean_grad = torch.ones(k, 1, dtype=like.dtype, device=like.device).expand(k, b) / b
        p.mean_grad_neg = p.mean_grad.neg().unsqueeze(-2)
        p.mean_grad_2 = p.mean_grad.unsqueeze(-2).expand(k, 2, b)
        p.zero = torch.scalar_tensor(0.0, dtype=like.dtype, device=like.device)
        p.squash_lim = 1.0 - torch.finfo(like.dtype).resolution
        self._plan = p
        return p

    @staticmethod
    def _chunk(members: int, rows: int, weights) -> int:
        """Members per chunk: a chunk's widest activation fills about 2 MiB (it stays in cache
        between the matmul and the ReLU or mask that follows; measured 15% faster at K = 20)."""
        width = max(max(w.shape[-2], w.shape[-1]) for _, w, _ in weights)
        return max(1, min(members, _CHUNK_BYTES // (rows * width * weights[0][1].element_size())))

    @classmethod
    def _forward_plan(cls, weights, x: Tensor, empty) -> tuple[list, list[Tensor]]:
        """``(steps, [x, h1, ..., out])``: ``baddbmm(bias, h, W^T, out=next)`` (+ ReLU) per
        layer, member chunk by member chunk (the members' matmuls are independent)."""
        acts = [x]
        for _, _, weight_t in weights:
            acts.append(empty(*x.shape[:2], weight_t.shape[-1]))
        steps = []
        chunk = cls._chunk(x.shape[0], x.shape[1], weights)
        for start in range(0, x.shape[0], chunk):
            c = slice(start, start + chunk)
            for i, (bias, _, weight_t) in enumerate(weights):
                steps.append((bias[c], acts[i][c], weight_t[c], acts[i + 1][c], i < len(weights) - 1))
        return steps, acts

    @classmethod
    def _backward_plan(
        cls, weights, grads, acts, g: Tensor, act_rows: slice, grad_rows: slice, empty,
        input_rows: slice | None = None, input_grad: Tensor | None = None,
    ) -> list:
        """Steps of the backward of ``g`` (the output's gradient) through the MLP.

        ``acts[i][:, act_rows]`` are the layer inputs of ``g``'s rows; the weight and bias
        gradients (written into ``grads``) come from ``g``'s ``grad_rows``; the input's gradient
        at ``input_rows`` goes to ``input_grad`` (if given). Member chunk by member chunk, with
        the gradients flowing back in per-chunk scratch buffers."""
        chunk = cls._chunk(g.shape[0], g.shape[1], weights)
        scratch = {i: empty(chunk, g.shape[1], weights[i][1].shape[-1]) for i in range(1, len(weights))}
        steps = []
        for start in range(0, g.shape[0], chunk):
            c = slice(start, start + chunk)
            g_c = g[c]
            for i in reversed(range(len(weights))):
                x = acts[i][c, act_rows]
                g_rows = g_c[:, grad_rows]
                step = [g_rows.transpose(-1, -2), x[:, grad_rows], grads[2 * i][c], g_rows, grads[2 * i + 1][c]]
                if i > 0:
                    nxt = scratch[i][: g_c.shape[0]]
                    step += [g_c, weights[i][1][c], nxt, x]
                    g_c = nxt
                steps.append(step)
            if input_grad is not None:
                steps.append((g_c[:, input_rows], weights[0][1][c], input_grad[c]))
        return steps

    @staticmethod
    def _run_forward(steps) -> None:
        for bias, x, weight_t, out, relu in steps:
            torch.baddbmm(bias, x, weight_t, out=out)  # BatchedReLUMLP.forward's ops
            if relu:
                out.relu_()

    @staticmethod
    def _run_backward(steps) -> None:
        for step in steps:  # BatchedReLUMLP.backward's ops
            if len(step) == 3:  # the input's gradient
                torch.bmm(*step[:2], out=step[2])
                continue
            g_t, x, grad_w, g, grad_b = step[:5]
            torch.bmm(g_t, x, out=grad_w)
            torch.sum(g, -2, out=grad_b)
            if len(step) > 5:
                g_all, weight, nxt, mask = step[5:]
                if weight.shape[-2] == 1:  # one output: bmm's product of one term is the plain product
                    torch.mul(g_all, weight, out=nxt)
                else:
                    torch.bmm(g_all, weight, out=nxt)
                _threshold_backward(nxt, mask, 0, grad_input=nxt)

    def _scale(self, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``NormalParamExtractor``'s scale: ``(scale, s + bias, softplus(s + bias) + min)``."""
        shifted = s + self.scale_bias
        unclamped = softplus(shifted) + self.scale_min
        return unclamped.clamp_min(self.scale_lb), shifted, unclamped

    # ------------------------------------------------------------------ the update
    @torch.no_grad()
    def __call__(
        self, log_alpha: Tensor, *data: Tensor, gamma: float, target_entropy: Tensor, loss_function: str = "l2"
    ) -> dict[str, Tensor]:
        """Losses of ``sac_losses`` (detached) for ``[K, b, ...]`` data; gradients of their sum
        written into the actor, critic and ``log_alpha`` parameters' ``.grad``.

        Args:
            log_alpha: the ``[N, M]`` parameter itself (its ``.grad`` is written).
            data: ``observation, action, next_observation, reward, not_terminated, noise``,
                as :func:`~torchrl_psmbpo.policy._update.sac_losses` takes them (flattened to ``K``).
            gamma, target_entropy, loss_function: as ``sac_losses``.
        """
        observation, action, next_observation, reward, not_terminated, noise = data
        k, b, obs_dim = observation.shape
        act_dim = action.shape[-1]
        p = self._get_plan(k, b, obs_dim, act_dim, observation)
        lim = p.squash_lim
        flat_log_alpha = log_alpha.detach().flatten()
        alpha = flat_log_alpha.exp().unsqueeze(-1)  # [K, 1]

        # ---- actor forward on [s', s] at once
        p.actor_in_next.copy_(next_observation)
        p.actor_in_now.copy_(observation)
        self._run_forward(p.actor_fwd)

        # ---- the target: tanh_normal_rsample at s', the target critics (ops of sac_losses)
        next_loc = p.next_loc
        next_scale = self._scale(p.next_s)[0]
        next_pre = next_loc + noise[..., 0, :, :] * next_scale
        next_action = next_pre.tanh().clamp(-lim, lim)  # squash: TorchRL's safe tanh
        next_var = next_scale**2
        next_lp = (-((next_pre - next_loc) ** 2) / (2 * next_var) - next_scale.log() - _LOG_SQRT_2PI).sum(-1) - (
            2.0 * (_LOG_2 - next_pre - softplus(-2.0 * next_pre))
        ).sum(-1)
        p.target_in_obs.copy_(next_observation.unsqueeze(1))
        p.target_in_act.copy_(next_action.unsqueeze(1))
        self._run_forward(p.target_fwd)
        next_value = (p.next_q - (alpha * next_lp).unsqueeze(-2)).min(-2).values
        target = reward + gamma * not_terminated * next_value  # [K, b]

        # ---- the current policy's sample (tanh_normal_rsample, intermediates kept)
        loc = p.loc
        scale, shifted, unclamped = self._scale(p.s)
        eps = noise[..., 1, :, :]
        pre = loc + eps * scale
        new_action = pre.tanh().clamp(-lim, lim)
        var = scale**2
        diff = pre - loc
        neg_sq = -(diff**2)
        two_var = 2 * var
        normal_lp = neg_sq / two_var - scale.log() - _LOG_SQRT_2PI
        minus_two_pre = -2.0 * pre
        log_det = 2.0 * (_LOG_2 - pre - softplus(minus_two_pre))
        log_prob = normal_lp.sum(-1) - log_det.sum(-1)  # [K, b]

        # ---- critics forward on [(s, a), (s, a~)] at once, both critics of every member
        for view in p.critic_in_obs:
            view.copy_(observation.unsqueeze(1))
        p.critic_in_act.copy_(action.unsqueeze(1))
        p.critic_in_new.copy_(new_action.unsqueeze(1))
        self._run_forward(p.critic_fwd)
        q = p.q
        target_2 = target.unsqueeze(-2).expand_as(q)
        if loss_function == "l2":
            loss_qvalue = mse_loss(q, target_2, reduction="none").sum(-2).mean(-1)
        else:
            loss_qvalue = smooth_l1_loss(q, target_2, reduction="none").sum(-2).mean(-1)
        q_new_min, q_new_index = p.q_new.min(-2)
        loss_actor = (alpha * log_prob - q_new_min).mean(-1)
        log_prob_te = log_prob + target_entropy
        loss_alpha = (-flat_log_alpha.unsqueeze(-1) * log_prob_te).mean(-1)
        losses = {
            "loss_actor": loss_actor,
            "loss_qvalue": loss_qvalue,
            "loss_alpha": loss_alpha,
            "alpha": alpha.squeeze(-1),
            "entropy": -log_prob.mean(-1),
        }

        # ---- backward: autograd's ops for sac_losses, in its engine's order of accumulation
        for param, buffer in zip(self._leaves, self._grad_buffers):
            if param.grad is not buffer:
                param.grad = buffer
        mean_grad = p.mean_grad
        # temperature: d loss_alpha / d log_alpha
        if log_alpha.grad is None:
            log_alpha.grad = torch.empty_like(log_alpha)
        log_alpha.grad.copy_((mean_grad * log_prob_te).sum(-1, keepdim=True).neg().view_as(log_alpha))
        # actor loss -> d q_new (through the min) and d log_prob; critic loss -> d q
        d_log_prob = mean_grad * alpha
        p.d_q_new.zero_().scatter_(-2, q_new_index.unsqueeze(-2), p.mean_grad_neg)
        if loss_function == "l2":
            _mse_backward(p.mean_grad_2, q, target_2, 0, grad_input=p.d_q_loss)
        else:
            _smooth_l1_backward(p.mean_grad_2, q, target_2, 0, 1.0, grad_input=p.d_q_loss)
        # both critic passes at once: weight gradients from (s, a), input gradient at (s, a~)
        self._run_backward(p.critic_bwd)
        d_action = p.d_critic_in.view(k, 2, b, -1).sum(1, keepdim=True).squeeze(1)[..., obs_dim:]

        # tanh-Normal log-probability and squash, back to (loc, scale). Autograd's ops, with
        # its negations folded into the signs of sums (exact: -(a op b) = (-a) op b)
        u = d_log_prob.unsqueeze(-1).expand(k, b, act_dim)  # d log_prob / d (normal_lp, -log_det)
        u2 = u * 2.0
        d_pre = _softplus_backward(u2, minus_two_pre, 1, 20) * -2.0 + u2  # log_det's two terms
        d_scale_neg = u / scale + ((u * ((neg_sq / two_var) / two_var)) * 2) * (scale * 2.0)  # -(log, var)
        d_loc = (u / two_var) * (diff * 2.0)  # -(d (pre - loc)), i.e. loc's share through (pre - loc)**2
        d_pre = d_pre - d_loc
        d_pre = d_pre + d_action * (1 - new_action.pow(2))  # the safe tanh's backward
        d_loc = d_loc + d_pre
        d_scale = d_pre * eps - d_scale_neg
        d_s = _softplus_backward(torch.where(unclamped >= self.scale_lb, d_scale, p.zero), shifted, 1, 20)
        torch.cat([d_loc, d_s], -1, out=p.d_actor_out)
        self._run_backward(p.actor_bwd)
        return losses
