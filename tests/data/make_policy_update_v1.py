"""Writes ``policy_update_v1.pt``: three ``PolicyEnsemble.update`` calls of the code at 7d7b145.

Run once, at 7d7b145 (before the hand-written update replaced autograd), from the repository root:

    PYTHONPATH=. python tests/data/make_policy_update_v1.py

For each case: the constructor arguments, the initial ``state_dict``, the three
``(batch, noise)`` inputs, the three returned loss TensorDicts and the final ``state_dict``
(parameters, target critics, temperatures, Adam state). ``tests/test_policy_ensemble.py::
test_update_matches_the_saved_update_of_7d7b145`` replays them. Rerunning it with later code
would overwrite the reference with that code's results: don't. For the same reason it is left
as it was run (its ``batch_for`` is not the tests' ``helpers.sac_batch``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tensordict import TensorDict

from torchrl_psmbpo.policy.ensemble import PolicyEnsemble

CASES = {
    "plain": dict(observation_dim=5, action_dim=1, ensemble_shape=(2, 2)),
    "clip_smooth_l1": dict(
        observation_dim=4, action_dim=3, ensemble_shape=(1, 3), grad_clip_norm=0.5,
        loss_function="smooth_l1", gamma=0.97, tau=0.05, init_alpha=0.5,
    ),
    "prior": dict(observation_dim=5, action_dim=2, ensemble_shape=(2, 1), action_prior=True, prior_lr=1e-3),
}
HIDDEN, BATCH, UPDATES = (16, 16), 32, 3


def batch_for(n: int, m: int, b: int, obs: int, act: int) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.randn(n, m, b, obs),
            "action": torch.rand(n, m, b, act) * 2 - 1,
            "next": {
                "observation": torch.randn(n, m, b, obs),
                "reward": torch.randn(n, m, b, 1),
                "terminated": torch.rand(n, m, b, 1) < 0.25,
            },
        },
        [n, m, b],
    )


def main() -> None:
    out = {}
    for seed, (name, kwargs) in enumerate(CASES.items()):
        torch.manual_seed(seed)
        ens = PolicyEnsemble(**kwargs, actor_hidden=HIDDEN, critic_hidden=HIDDEN, actor_lr=1e-3, critic_lr=2e-3, alpha_lr=3e-3)
        case = {"kwargs": kwargs, "initial": {k: v.clone() if torch.is_tensor(v) else v for k, v in ens.state_dict().items()}}
        n, m = kwargs["ensemble_shape"]
        inputs, outputs = [], []
        for _ in range(UPDATES):
            batch = batch_for(n, m, BATCH, kwargs["observation_dim"], kwargs["action_dim"])
            noise = torch.randn(n, m, 2, BATCH, kwargs["action_dim"])
            inputs.append((batch.to_dict(), noise))
            outputs.append(ens.update(batch, noise).to_dict())
        case.update(inputs=inputs, outputs=outputs, final=ens.state_dict())
        out[name] = case
    path = Path(__file__).with_name("policy_update_v1.pt")
    torch.save(out, path)
    print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
