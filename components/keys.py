"""The tensordict entries that more than one part of the agent reads or writes, named once.

Every subpackage may import this module (it imports none of them): the posterior-sampling
transform writes :data:`POLICY_INDEX_KEY` and the policy ensemble's acting module reads it;
the replay buffers store :data:`TRANSITION_KEYS` and the training loop selects them from real
and imagined data alike.
"""

from __future__ import annotations

from tensordict.utils import NestedKey

__all__ = ["POLICY_INDEX_KEY", "TRANSITION_KEYS"]

POLICY_INDEX_KEY = "policy_index"
"""The tensordict entry holding the acting member's flat index ``n * M + m``."""

TRANSITION_KEYS: tuple[NestedKey, ...] = (
    "observation",
    "action",
    ("next", "observation"),
    ("next", "reward"),
    ("next", "terminated"),
    ("next", "done"),
)
"""The entries a SAC update reads from a transition."""
