"""Reading transitions straight out of a TorchRL storage, for the trainer and the imagined env."""

from __future__ import annotations

import torch
from tensordict import LazyStackedTensorDict, TensorDictBase
from torchrl.data import ReplayBuffer
from torchrl.data.replay_buffers.storages import Storage


def storage_rows(source: ReplayBuffer | Storage, count: int | None, empty: str) -> TensorDictBase:
    """Rows of the transitions a storage holds, read directly (no sampling, no transforms).

    Args:
        source: a replay buffer (its storage is read) or a storage.
        count: ``None``: all ``n`` rows in order (a view of a tensor storage); an int: that many
            rows drawn uniformly with replacement (torch's global RNG).
        empty: the message of the ``ValueError`` raised when the storage holds nothing.
    """
    storage = source.storage if isinstance(source, ReplayBuffer) else source
    n = len(storage)
    if n == 0:
        raise ValueError(empty)
    items = storage[:n] if count is None else storage[torch.randint(n, (count,))]
    if isinstance(items, (list, tuple)):  # a list storage: one TensorDict per row
        items = LazyStackedTensorDict.maybe_dense_stack(list(items), 0)
    return items
