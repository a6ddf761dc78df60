"""A TorchRL MLP evaluated for P stacked parameter sets with batched matmuls.

:class:`BatchedNetwork` runs the module graph of one network (``nn.Sequential`` of
``nn.Linear`` and parameter-free modules, e.g. TorchRL's ``MLP`` followed by a
``NormalParamExtractor``) for P members at once: each ``nn.Linear`` becomes
``baddbmm(bias, x, weight^T)`` over the stacked ``[P, out, in]`` weights
(:func:`~torchrl_psmbpo.batched_linear.batched_linear`, the layer the dynamics ensemble uses too).

A run of ``Linear, ReLU, ..., Linear`` layers (the SAC networks) goes through
:class:`BatchedReLUMLP`, an ``autograd.Function`` with a hand-written backward, which is
what makes it faster than autograd over the same ops on CPU (see
``docs/policy_ensemble.md``): the weight gradients come out directly in the parameters'
``[P, out, in]`` layout (no transposed copy), the ReLU masks are applied in place to the
gradient buffers the backward itself allocated (no ``threshold_backward`` allocation), the
forward ReLUs overwrite the matmul outputs, and unneeded gradients (frozen critics in the
actor loss, the data input) are never computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from torchrl_psmbpo.batched_linear import batched_linear

Tensor = torch.Tensor


class BatchedReLUMLP(torch.autograd.Function):
    """``x -> Linear -> ReLU -> ... -> Linear`` for P stacked members, hand-written backward.

    ``apply(x, w0, b0, w1, b1, ...)`` with ``x: [P, n, in]``, ``w_i: [P, out_i, in_i]``,
    ``b_i: [P, out_i]``; returns ``[P, n, out_last]``. Same values and gradients as
    ``nn.Linear``/``nn.ReLU`` layers applied member by member.
    """

    @staticmethod
    def forward(ctx, x: Tensor, *weights: Tensor) -> Tensor:
        layers = len(weights) // 2
        layer_inputs = []
        h = x
        for i in range(layers):
            w, b = weights[2 * i], weights[2 * i + 1]
            layer_inputs.append(h)
            h = batched_linear(h, w.transpose(-1, -2), b.unsqueeze(-2))
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
    """Run one network for P stacked parameter sets with batched matmuls.

    Walks the network's leaf modules in order: an ``nn.Linear`` becomes
    ``baddbmm(bias, x, weight^T)`` with the stacked ``[P, out, in]`` weights, any other leaf
    (activation, ``NormalParamExtractor``) is called unchanged. The input is concatenated
    on the last dim first, as :class:`~torchrl.modules.MLP` does. A leading
    ``Linear, ReLU, ..., Linear`` run is handed to :class:`BatchedReLUMLP`.

    Args:
        network: the template network (the structure only; its own parameters are unused).
        param_prefix: the key prefix of ``network``'s parameters in the stacked TensorDict.
    """

    def __init__(self, network: nn.Module, param_prefix: tuple[str, ...]) -> None:
        self.steps: list[tuple[str, object]] = []
        self._walk(network, param_prefix)
        self.linear_keys = [step[1] for step in self.steps if step[0] == "linear"]
        # length of the leading Linear (ReLU Linear)* run, in steps
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
            self.steps.append(("call", module))  # activation, NormalParamExtractor, ...
        elif isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                self._walk(child, key + (name,))
        else:
            raise TypeError(
                f"BatchedNetwork supports nn.Linear as the only layer with parameters (inside "
                f"nn.Sequential), got {type(module).__name__} at {'.'.join(key)!r}"
            )

    def __call__(self, weights: Sequence[Tensor], *inputs: Tensor):
        """Apply the network.

        Args:
            weights: ``[w0, b0, w1, b1, ...]`` with ``w_i: [P, out, in]``, ``b_i: [P, out]``.
            inputs: tensors ``[P, n, d_j]``, concatenated on the last dim.
        """
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
                x = batched_linear(x, w.transpose(-1, -2), b.unsqueeze(-2))
            else:
                x = obj(x)
        return x
