"""A trained agent as a file that loads without the training code: the acting policy and the
whole ensemble's actors.

:func:`save_agent` writes ``agent.pt``: plain tensors and numbers only (it loads with
``torch.load(weights_only=True)``), namely every member's actor weights, the shapes and widths
to rebuild them, the member to act with (the one the run's posterior finds most likely) and the
task it was trained on. :func:`load_agent` rebuilds that member (or any other) as a stock TorchRL
:class:`~torchrl.modules.ProbabilisticActor` reading ``"observation"`` and writing
``"action"``: use it in ``make_env(task)`` like any TorchRL policy (under
``set_exploration_type(ExplorationType.DETERMINISTIC)`` for its mean action).
:func:`load_ensemble` gives all members.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchrl.modules import ProbabilisticActor

from torchrl_psmbpo.policy._networks import make_sac_actor

__all__ = ["AGENT_NAME", "save_agent", "load_agent", "load_ensemble", "agent_info"]

AGENT_NAME = "agent.pt"
"""The file name :func:`save_agent` uses inside a run dir."""
_FORMAT = 1


def save_agent(path: str | Path, policies: Any, member: int, *, task: str | None = None,
               action_repeat: int = 1) -> Path:
    """Write every member's actor of ``policies`` (a :class:`~torchrl_psmbpo.policy.PolicyEnsemble`)
    to ``path`` (a file, or a dir that gets ``agent.pt``), with ``member`` (flat index) as the
    one to act with. Atomic: a temporary file renamed over the old one.

    Examples:
        >>> import tempfile
        >>> from torchrl_psmbpo.policy import PolicyEnsemble
        >>> ens = PolicyEnsemble(3, 1, ensemble_shape=(2, 2), actor_hidden=(8,), critic_hidden=(8,))
        >>> path = save_agent(tempfile.mkdtemp(), ens, member=3, task="gym:Pendulum-v1")
        >>> actor = load_agent(path)
        >>> agent_info(path)["member"], type(actor).__name__
        (3, 'ProbabilisticActor')
    """
    path = Path(path)
    if path.suffix != ".pt":
        path = path / AGENT_NAME
    num = policies.num_members
    if not 0 <= int(member) < num:
        raise ValueError(f"member {member} is out of range: the ensemble has {num} members.")
    actors = [policies.member(*policies.member_index(i)) for i in range(num)]
    payload = {
        "format": _FORMAT,
        "observation_dim": int(policies.observation_dim),
        "action_dim": int(policies.action_dim),
        "actor_hidden": [int(w) for w in policies.actor_hidden],
        "activation": policies.activation.__name__,
        "scale_lb": float(policies.scale_lb),
        "ensemble_shape": [int(d) for d in policies.ensemble_shape],
        "member": int(member),
        "task": task,
        "action_repeat": int(action_repeat),
        "actors": [{k: v.detach().cpu().clone() for k, v in a.state_dict().items()} for a in actors],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def _read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / AGENT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"No saved agent at {str(path)!r}: a run writes {AGENT_NAME} when it "
                                "ends (runs made before that have none).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, or not ours
        raise ValueError(f"{str(path)!r} is not a readable saved agent ({type(err).__name__}).") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a saved agent of this package (format {_FORMAT}).")
    return payload


def agent_info(path: str | Path) -> dict[str, Any]:
    """What a saved agent holds, without its weights: dims, widths, ensemble shape, the acting
    member, the task and its action repeat."""
    return {k: v for k, v in _read(path).items() if k != "actors"}


def _actor(payload: dict[str, Any], index: int, device: torch.device | str | None) -> ProbabilisticActor:
    actor = make_sac_actor(payload["observation_dim"], payload["action_dim"],
                           payload["actor_hidden"], activation=getattr(nn, payload["activation"]),
                           scale_lb=payload["scale_lb"], device=device)
    actor.load_state_dict(payload["actors"][index])
    return actor


def load_agent(path: str | Path, member: int | None = None,
               device: torch.device | str | None = None) -> ProbabilisticActor:
    """The saved acting member (or flat member ``member``) as a TorchRL actor.

    Args:
        path: a run dir holding ``agent.pt``, or the file.
        member: flat member index; ``None`` (default) is the member the run acted with last.
        device: where the actor's parameters go.

    Raises:
        FileNotFoundError: no saved agent there. ValueError: not a saved agent, or ``member``
        out of range.
    """
    payload = _read(path)
    index = payload["member"] if member is None else int(member)
    if not 0 <= index < len(payload["actors"]):
        raise ValueError(f"member {index} is out of range: the saved ensemble has "
                         f"{len(payload['actors'])} members (0..{len(payload['actors']) - 1}).")
    return _actor(payload, index, device)


def load_ensemble(path: str | Path, device: torch.device | str | None = None) -> list[ProbabilisticActor]:
    """Every member of the saved ensemble as a TorchRL actor, by flat index ``n * M + m``."""
    payload = _read(path)
    return [_actor(payload, i, device) for i in range(len(payload["actors"]))]
