"""Linear layers of P members with stacked parameters, applied with one batched matmul.

Both ensembles of the agent run their members this way, with no Python loop over members:

* the dynamics ensemble holds each layer as an :class:`EnsembleLinear` module (its own
  ``nn.Parameter`` s, weight ``[E, in, out]``);
* the policy ensemble keeps TorchRL's ``nn.Linear`` parameters stacked in a TensorDict
  (weight ``[P, out, in]``, bias ``[P, out]``) and applies :func:`batched_linear` to the
  transposed weight view and the unsqueezed bias.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["batched_linear", "EnsembleLinear"]

Tensor = torch.Tensor


def batched_linear(x: Tensor, weight: Tensor, bias: Tensor, members: Tensor | None = None) -> Tensor:
    """``x[p] @ weight[p] + bias[p]`` for every member ``p``, as one ``torch.baddbmm``.

    Args:
        x: input ``[P, n, in]``; row block ``p`` goes through member ``p``'s layer.
        weight: stacked weights ``[E, in, out]`` (any strides: an ``nn.Linear`` weight
            ``[E, out, in]`` is passed as its ``transpose(-1, -2)`` view).
        bias: stacked biases ``[E, 1, out]``.
        members: long tensor of ``P`` indices into the ``E`` members; ``None`` uses all
            members in order (then ``P = E``, and no weights are gathered).

    Returns:
        ``[P, n, out]``.

    Examples:
        >>> w, b = torch.randn(3, 4, 2), torch.randn(3, 1, 2)
        >>> x = torch.randn(3, 5, 4)
        >>> torch.allclose(batched_linear(x, w, b)[1], x[1] @ w[1] + b[1])
        True
        >>> batched_linear(x[:2], w, b, members=torch.tensor([2, 0])).shape
        torch.Size([2, 5, 2])
    """
    if members is not None:
        weight, bias = weight[members], bias[members]
    return torch.baddbmm(bias, x, weight)


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers with stacked parameters, applied with one ``baddbmm``.

    Args:
        num_members (int): ensemble size ``E``.
        in_features (int): input size.
        out_features (int): output size.
        device (torch.device, optional): where the parameters live.

    The weight has shape ``[E, in_features, out_features]`` and the bias ``[E, 1, out_features]``.
    Initialisation follows MBPO / mbrl-lib: weights from a normal truncated at two standard
    deviations with std ``1 / (2 sqrt(in_features))``, zero biases.

    Examples:
        >>> layer = EnsembleLinear(7, 3, 4)
        >>> layer(torch.randn(7, 10, 3)).shape
        torch.Size([7, 10, 4])
    """

    def __init__(
        self,
        num_members: int,
        in_features: int,
        out_features: int,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.num_members = num_members
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(num_members, in_features, out_features, device=device))
        self.bias = nn.Parameter(torch.zeros(num_members, 1, out_features, device=device))
        std = 1.0 / (2.0 * math.sqrt(in_features))
        nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        """Applies member ``k``'s layer to ``x[k]``.

        Args:
            x (Tensor): input of shape ``[E', n, in_features]``.
            members (Tensor, optional): long tensor of ``E'`` member indices; all members when
                ``None`` (then ``E' = E``).
        """
        return batched_linear(x, self.weight, self.bias, members)

    def member(self, index: int) -> nn.Linear:
        """A plain :class:`torch.nn.Linear` holding a copy of member ``index``'s parameters."""
        linear = nn.Linear(self.in_features, self.out_features, device=self.weight.device)
        with torch.no_grad():
            linear.weight.copy_(self.weight[index].T)
            linear.bias.copy_(self.bias[index, 0])
        return linear

    def extra_repr(self) -> str:
        return f"num_members={self.num_members}, in_features={self.in_features}, out_features={self.out_features}"
