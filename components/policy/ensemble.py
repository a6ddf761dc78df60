"""N·M SAC agents with stacked parameters: the policy posterior of PS-/OPS-MBPO.

Member ``(n, m)`` is a plain TorchRL SAC agent (a ``ProbabilisticActor`` with a
``TanhNormal`` head, two ``ValueOperator`` critics, two target critics, its own entropy
temperature). The parameters of all members are stacked with
``TensorDict.from_modules`` into tensors with leading dims ``[N, M]`` (critics
``[N, M, 2]``), and every computation runs on the whole stack at once, with no Python loop
over members: ``update`` makes one SAC step for every member, ``indexed_policy`` acts with
one chosen member per env, ``ensemble_policy`` acts with all members, ``member(n, m)``
exports one member as a standalone TorchRL actor. See ``docs/policy_ensemble.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictParams
from torch import nn
from torchrl.modules import ProbabilisticActor, ValueOperator

from torchrl_psmbpo._checks import check_ensemble_shape, check_int, check_real
from torchrl_psmbpo.policy._acting import AllMembersActor, IndexedMemberActor, PriorView
from torchrl_psmbpo.policy._networks import load_member, make_sac_actor, make_sac_critic
from torchrl_psmbpo.policy._update import BACKENDS, LOSS_FUNCTIONS, LOSS_KEYS, PRIOR_LOSS_KEYS
from torchrl_psmbpo.keys import POLICY_INDEX_KEY

__all__ = ["PolicyEnsemble"]

Tensor = torch.Tensor
# devices on which update() takes the bmm backend's hand-written path (see __init__)
_FAST_UPDATE_DEVICES = ("cpu",)
_REQUIRED_KEYS = (
    "observation",
    "action",
    ("next", "observation"),
    ("next", "reward"),
    ("next", "terminated"),
)


class PolicyEnsemble(nn.Module):
    """N·M SAC agents trained and run together over stacked parameters.

    Args:
        observation_dim: size of the ``"observation"`` vector.
        action_dim: size of the ``"action"`` vector (actions in [-1, 1]).
        ensemble_shape: ``(N, M)``: N models, M policies per model. Defaults to ``(5, 4)``
            (the N = 5, M = 4 of docs/algorithm.md).

    Keyword Args:
        actor_hidden, critic_hidden: hidden layer widths of the actor and critic MLPs.
        actor_lr, critic_lr, alpha_lr: Adam learning rates.
        gamma: discount.
        tau: Polyak rate of the target critics (``target <- (1 - tau) target + tau critic``).
        init_alpha: initial entropy temperature of every member.
        target_entropy: temperature target; ``None`` gives ``-action_dim``.
        grad_clip_norm: if set, each member's actor gradient and each member's critic
            gradient (both critics) are clipped to this norm, as
            ``torch.nn.utils.clip_grad_norm_`` on that member alone would.
        loss_function: critic regression loss, ``"l2"`` (SAC's squared error) or
            ``"smooth_l1"``.
        activation: activation class of the MLPs.
        scale_lb: lower bound of the actor's Normal scale.
        action_prior: learn a state-conditioned action prior p_a(a|s) per member (Marino &
            Yue; ``docs/inference_perspective.md``) in place of SAC's uniform prior: the
            actor and the soft target use ``log pi - log p_a`` instead of ``log pi``, the
            temperature is tuned toward ``target_kl``, and the prior is trained toward the
            policy (closed-form ``KL(pi || p_a)``, gradient into the prior only) with its
            own learning rate. ``False`` (default) is plain SAC, bit for bit.
        prior_hidden: hidden widths of the prior's MLP (``None``: ``actor_hidden``). The
            prior is a :func:`make_sac_actor` network (TanhNormal head).
        prior_lr: Adam learning rate of the prior; slower than the actor's so that the prior
            consolidates the policy rather than chases it. Default ``3e-5``, a tenth of the
            default ``actor_lr`` (our choice: the paper gives no value).
        target_kl: temperature target with the prior, in nats per state (the temperature
            grows when ``KL(pi || p_a)`` exceeds it). ``None`` gives
            ``action_dim * log 2 - target_entropy``: the KL to the uniform prior on
            ``[-1, 1]^A`` of a policy at SAC's target entropy, so that with a uniform prior
            the temperature loss is exactly SAC's. ``prior_hidden``, ``prior_lr`` and
            ``target_kl`` are ignored unless ``action_prior=True``.
        backend: ``"bmm"`` (default: batched matmuls over the stacked weights) or
            ``"vmap"`` (``torch.vmap`` over the TorchRL modules with the stacked params);
            same results, see ``docs/policy_ensemble.md`` for the measured speeds.
        compile: on a GPU, run the loss computation (forward and backward) under
            ``torch.compile`` (``backend="bmm"`` only; not measured yet). On a CPU it is
            ignored (``compiled`` stays ``False``): compiled, the update took 1.3x the time
            of the autograd update and 1.6x that of the default one (``docs/policy_ensemble.md``,
            "Speed of the update").
        cudagraphs: on a CUDA device, capture the whole update of all members (losses,
            backward, clipping, Adam step, Polyak update) as one CUDA graph with
            :class:`tensordict.nn.CudaGraphModule` and replay it at every :meth:`update`
            (``backend="bmm"`` only; Adam is made ``capturable``). The first two updates run
            eagerly (the second also captures); each later one copies the batch and the noise
            into the graph's static buffers and replays it: the same numbers as the eager
            update, far fewer kernel launches (``docs/gpu.md``; not measured yet). A batch of
            another shape, or :meth:`load_state_dict`, captures anew; learning rates, ``gamma``
            and ``tau`` are fixed at capture. Constructing the graph module removes TensorDict
            from torch's pytree registry for the process (tensordict's own rule). On any other
            device it is ignored (``cudagraphs`` stays ``False``), as ``compile`` is on a CPU.
        device: where every parameter lives (``None``: torch's default device).

    Examples:
        >>> ens = PolicyEnsemble(3, 1, (2, 3), actor_hidden=(32, 32), critic_hidden=(32, 32))
        >>> ens.ensemble_shape, ens.num_members
        (torch.Size([2, 3]), 6)
        >>> batch = TensorDict({
        ...     "observation": torch.randn(2, 3, 16, 3), "action": torch.rand(2, 3, 16, 1) * 2 - 1,
        ...     "next": {"observation": torch.randn(2, 3, 16, 3), "reward": torch.randn(2, 3, 16, 1),
        ...              "terminated": torch.zeros(2, 3, 16, 1, dtype=torch.bool)},
        ... }, [2, 3, 16])
        >>> ens.update(batch)["loss_qvalue"].shape
        torch.Size([2, 3])
        >>> td = TensorDict({"observation": torch.randn(3), "policy_index": torch.tensor(4)})
        >>> ens.indexed_policy(td)["action"].shape
        torch.Size([1])
        >>> actor = ens.member(1, 1)  # a plain ProbabilisticActor with member 4's weights
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        ensemble_shape: Sequence[int] = (5, 4),
        *,
        actor_hidden: Sequence[int] = (256, 256),
        critic_hidden: Sequence[int] = (256, 256),
        actor_lr: float = 3e-4,
        critic_lr: float = 3e-4,
        alpha_lr: float = 3e-4,
        gamma: float = 0.99,
        tau: float = 0.005,
        init_alpha: float = 1.0,
        target_entropy: float | None = None,
        grad_clip_norm: float | None = None,
        loss_function: str = "l2",
        activation: type[nn.Module] = nn.ReLU,
        scale_lb: float = 0.1,
        action_prior: bool = False,
        prior_hidden: Sequence[int] | None = None,
        prior_lr: float = 3e-5,
        target_kl: float | None = None,
        backend: str = "bmm",
        compile: bool = False,
        cudagraphs: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.observation_dim = check_int("observation_dim", observation_dim)
        self.action_dim = check_int("action_dim", action_dim)
        n, m = check_ensemble_shape(ensemble_shape)
        self._shape = torch.Size([n, m])
        for name, widths in (("actor_hidden", actor_hidden), ("critic_hidden", critic_hidden)):
            for w in tuple(widths):
                check_int(f"{name} width", w)
        self.actor_hidden = tuple(actor_hidden)
        self.critic_hidden = tuple(critic_hidden)
        lrs = [
            check_real("actor_lr", actor_lr, low=0, low_open=True),
            check_real("critic_lr", critic_lr, low=0, low_open=True),
            check_real("alpha_lr", alpha_lr, low=0, low_open=True),
        ]
        self.gamma = check_real("gamma", gamma, low=0, high=1)
        self.tau = check_real("tau", tau, low=0, high=1, low_open=True)
        init_alpha = check_real("init_alpha", init_alpha, low=0, low_open=True)
        self.grad_clip_norm = (
            None if grad_clip_norm is None
            else check_real("grad_clip_norm", grad_clip_norm, low=0, low_open=True)
        )
        if loss_function not in LOSS_FUNCTIONS:
            raise ValueError(f"loss_function must be one of {LOSS_FUNCTIONS}, got {loss_function!r}")
        self.loss_function = loss_function
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {tuple(BACKENDS)}, got {backend!r}")
        if compile and backend != "bmm":
            # dynamo (torch 2.13) fails on TensorDict.to_module inside vmap
            raise ValueError(f"compile=True needs backend='bmm', got backend={backend!r}")
        if cudagraphs and backend != "bmm":
            raise ValueError(f"cudagraphs=True needs backend='bmm', got backend={backend!r}")
        self.activation = activation
        self.scale_lb = check_real("scale_lb", scale_lb, low=0, low_open=True)
        self.device = torch.device(device) if device is not None else torch.get_default_device()
        # CUDA graphs exist on CUDA devices only: elsewhere the option is ignored
        self.cudagraphs = bool(cudagraphs) and self.device.type == "cuda"
        self._graph = None  # the captured update (a CudaGraphModule) and the shapes it was captured for
        self._graph_shapes: tuple | None = None
        if target_entropy is None:
            target_entropy = -float(self.action_dim)
        elif isinstance(target_entropy, bool) or not isinstance(target_entropy, (int, float)):
            raise TypeError(f"target_entropy must be a number or None, got {target_entropy!r}")
        if not isinstance(action_prior, bool):
            raise TypeError(f"action_prior must be a bool, got {action_prior!r}")
        self.action_prior = action_prior
        if action_prior:
            prior_hidden = self.actor_hidden if prior_hidden is None else tuple(prior_hidden)
            for w in prior_hidden:
                check_int("prior_hidden width", w)
            self.prior_hidden = tuple(prior_hidden)
            lrs.append(check_real("prior_lr", prior_lr, low=0, low_open=True))
            if target_kl is None:
                target_kl = self.action_dim * math.log(2.0) - float(target_entropy)
            target_kl = check_real("target_kl", target_kl, low=0, low_open=True)

        # N·M independently initialised members, stacked (the loops run once, at construction).
        k = n * m
        actors = [self._new_actor() for _ in range(k)]
        critics = [self._new_critic() for _ in range(2 * k)]
        self.actor_params = TensorDictParams(
            TensorDict.from_modules(*actors).data.reshape(n, m).clone()
        )
        self.critic_params = TensorDictParams(
            TensorDict.from_modules(*critics).data.reshape(n, m, 2).clone()
        )
        self.target_critic_params = TensorDictParams(
            self.critic_params.data.clone(), no_convert=True
        )
        self.log_alpha = nn.Parameter(
            torch.full((n, m), math.log(init_alpha), device=self.device)
        )
        self.register_buffer(
            "target_entropy", torch.tensor(float(target_entropy), device=self.device)
        )
        prior_template = self.prior_params = None
        if action_prior:  # created after the SAC members: their initial weights do not change
            priors = [self._new_actor(prior=True) for _ in range(k)]
            prior_template = priors[0]
            self.prior_params = TensorDictParams(
                TensorDict.from_modules(*priors).data.reshape(n, m).clone()
            )
            self.register_buffer("target_kl", torch.tensor(float(target_kl), device=self.device))
        # templates: structure only; their own parameters are never used
        self._backend = BACKENDS[backend](
            actors[0], critics[0], self.actor_params, self.critic_params, self.target_critic_params,
            prior_template=prior_template, prior_params=self.prior_params,
        )
        # the stacked leaves (load_state_dict copies into these very tensors)
        self._actor_leaves = list(self.actor_params.values(True, True))
        self._critic_leaves = list(self.critic_params.values(True, True))
        self._target_leaves = [self.target_critic_params.get(k) for k in self.critic_params.keys(True, True)]
        groups = [
            {"params": self._actor_leaves, "lr": lrs[0]},
            {"params": self._critic_leaves, "lr": lrs[1]},
            {"params": [self.log_alpha], "lr": lrs[2]},
        ]
        self._prior_leaves: list[Tensor] = []
        if action_prior:
            self._prior_leaves = list(self.prior_params.values(True, True))
            groups.append({"params": self._prior_leaves, "lr": lrs[3]})
        self.optimizer = torch.optim.Adam(groups, **self._adam_kwargs())
        # on a CPU, compile=True is ignored: the compiled update is slower than eager there
        self.compiled = bool(compile) and self.device.type != "cpu"
        if self.compiled:
            self._backend.compile()
        # the bmm backend's hand-written update (same numbers as autograd's, faster); measured
        # on CPUs only so far, so GPUs keep the autograd update until measured there
        self._fast_update = (
            getattr(self._backend, "sac_step", None) is not None
            and not self.compiled
            and self.device.type in _FAST_UPDATE_DEVICES
        )
        self._acting = {
            "indexed": TensorDictModule(
                IndexedMemberActor(self._backend, self._shape, self.observation_dim, self.device),
                in_keys=["observation", POLICY_INDEX_KEY],
                out_keys=["action"],
            ),
            "all": TensorDictModule(
                AllMembersActor(self._backend, self._shape, self.observation_dim, self.device),
                in_keys=["observation"],
                out_keys=["action"],
            ),
        }
        if action_prior:
            self._acting["prior"] = TensorDictModule(
                AllMembersActor(PriorView(self._backend), self._shape, self.observation_dim, self.device),
                in_keys=["observation"],
                out_keys=["action"],
            )

    # ------------------------------------------------------------------ construction helpers
    def _new_actor(self, prior: bool = False) -> ProbabilisticActor:
        """A member's actor, or its action prior (the same network, ``prior_hidden`` wide)."""
        return make_sac_actor(
            self.observation_dim,
            self.action_dim,
            self.prior_hidden if prior else self.actor_hidden,
            activation=self.activation,
            scale_lb=self.scale_lb,
            device=self.device,
        )

    def _new_critic(self) -> ValueOperator:
        return make_sac_critic(
            self.observation_dim,
            self.action_dim,
            self.critic_hidden,
            activation=self.activation,
            device=self.device,
        )

    def _adam_kwargs(self) -> dict[str, bool | None]:
        # the fused kernel does the whole step in one pass per tensor; elementwise, so the
        # same as one Adam per member. capturable: torch refuses to capture a step without it;
        # the fused kernel keeps its step counts on the device and computes the same either way
        if self.device.type in ("cpu", "cuda"):
            return {"fused": True, "foreach": None, "capturable": self.cudagraphs}
        return {"fused": None, "foreach": True, "capturable": False}

    # ------------------------------------------------------------------ shape
    @property
    def ensemble_shape(self) -> torch.Size:
        """``torch.Size([N, M])``."""
        return self._shape

    @property
    def num_members(self) -> int:
        """``N * M``."""
        return self._shape.numel()

    @property
    def backend(self) -> str:
        """``"bmm"`` or ``"vmap"``."""
        return self._backend.name

    def flat_index(self, n: int | Tensor, m: int | Tensor) -> int | Tensor:
        """The flat member index ``i = n * M + m``, what ``"policy_index"`` holds.

        Args:
            n: model index in ``[0, N)``; an int, or an integer tensor of any shape.
            m: policy index in ``[0, M)``; same kinds (tensors broadcast with ``n``).

        Returns:
            an ``int`` when both are ints (or 0-d tensors), else a long tensor.

        Examples:
            >>> ens = PolicyEnsemble(3, 1, (2, 3), actor_hidden=(8,), critic_hidden=(8,))
            >>> ens.flat_index(1, 2)
            5
            >>> ens.flat_index(torch.tensor([0, 1]), torch.tensor([2, 0]))
            tensor([2, 3])
        """
        n_ = self._index_value(n, "n", self._shape[0])
        m_ = self._index_value(m, "m", self._shape[1])
        return n_ * self._shape[1] + m_

    def member_index(self, i: int | Tensor) -> tuple[int, int] | tuple[Tensor, Tensor]:
        """``(n, m)`` of the flat index ``i = n * M + m`` (the inverse of :meth:`flat_index`).

        Args:
            i: flat index in ``[0, N * M)``; an int, or an integer tensor of any shape.

        Returns:
            ``(n, m)`` as ints for an int (or a 0-d tensor), as long tensors for a tensor.

        Examples:
            >>> ens = PolicyEnsemble(3, 1, (2, 3), actor_hidden=(8,), critic_hidden=(8,))
            >>> ens.member_index(5)
            (1, 2)
            >>> ens.member_index(torch.tensor([0, 4]))
            (tensor([0, 1]), tensor([0, 1]))
        """
        i_ = self._index_value(i, "policy index i", self.num_members)
        return i_ // self._shape[1], i_ % self._shape[1]

    @staticmethod
    def _index_value(value: Any, name: str, size: int) -> int | Tensor:
        """``value`` as an int (Python int or 0-d integer tensor) or a long tensor, in ``[0, size)``."""
        if isinstance(value, Tensor):
            if value.dtype == torch.bool or value.dtype.is_floating_point or value.dtype.is_complex:
                raise TypeError(
                    f"{name} must be an int or an integer tensor, got a tensor of dtype {value.dtype}"
                )
            if value.ndim == 0:
                value = int(value)
            else:
                value = value.long()
                if value.numel() and (value.min() < 0 or value.max() >= size):
                    bad = value[(value < 0) | (value >= size)].flatten()[0].item()
                    raise ValueError(f"{name}={bad} is out of range; accepted: 0..{size - 1}")
                return value
        elif isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int or an integer tensor, got {value!r}")
        if not 0 <= value < size:
            raise ValueError(f"{name}={value} is out of range; accepted: 0..{size - 1}")
        return value

    def _check_member(self, n: int | Tensor, m: int | Tensor) -> tuple[int, int]:
        """``(n, m)`` as Python ints; accepts ints and 0-d integer tensors."""
        big_n, big_m = self._shape
        ints = []
        for v in (n, m):
            if isinstance(v, Tensor) and v.ndim == 0 and not (v.dtype == torch.bool or v.dtype.is_floating_point):
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"member indices must be ints or 0-d integer tensors, got ({n!r}, {m!r})")
            ints.append(v)
        n, m = ints
        if not (0 <= n < big_n and 0 <= m < big_m):
            raise ValueError(f"member ({n}, {m}) is outside the ensemble shape [{big_n}, {big_m}]")
        return n, m

    # ------------------------------------------------------------------ training
    def _unpack(self, batch: TensorDictBase) -> tuple[list[Tensor], int]:
        if not isinstance(batch, TensorDictBase):
            raise TypeError(f"batch must be a TensorDict, got {type(batch).__name__}")
        shape = batch.batch_size
        if len(shape) < 3 or shape[:2] != self._shape:
            raise ValueError(
                f"batch must have batch_size [N, M, b] = [{self._shape[0]}, {self._shape[1]}, b], "
                f"got {list(shape)}"
            )
        size = shape[2:].numel()
        if size == 0:
            raise ValueError(f"batch has no transitions per member (batch_size {list(shape)})")
        values = {key: batch.get(key, None) for key in _REQUIRED_KEYS}
        missing = [key for key, value in values.items() if value is None]
        if missing:
            raise KeyError(f"batch lacks {missing}; an update needs {list(_REQUIRED_KEYS)}")
        k = self.num_members
        dtype = self.log_alpha.dtype
        out = []
        for key, dim in (
            ("observation", self.observation_dim),
            ("action", self.action_dim),
            (("next", "observation"), self.observation_dim),
        ):
            value = values[key]
            if value.shape != (*shape, dim):
                raise ValueError(f"batch[{key!r}] must have shape {[*shape, dim]}, got {list(value.shape)}")
            out.append(value.to(self.device, dtype).reshape(k, size, dim))
        for key in (("next", "reward"), ("next", "terminated")):
            if values[key].shape not in (shape, (*shape, 1)):
                raise ValueError(f"batch[{key!r}] must have shape {[*shape, 1]}, got {list(values[key].shape)}")
        reward = values["next", "reward"].to(self.device, dtype).reshape(k, size)
        terminated = values["next", "terminated"].to(self.device).reshape(k, size)
        not_terminated = (~terminated.bool()).to(dtype)
        return [*out, reward, not_terminated], size

    def _check_noise(self, noise: Tensor | None, size: int) -> Tensor:
        shape = (*self._shape, 2, size, self.action_dim)
        if noise is None:
            return torch.randn(shape, device=self.device, dtype=self.log_alpha.dtype)
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape [N, M, 2, b, A] = {list(shape)}, got {list(noise.shape)}")
        return noise.to(self.device, self.log_alpha.dtype)

    def loss(self, batch: TensorDictBase, noise: Tensor | None = None) -> TensorDict:
        """Every member's SAC losses on its own slice of ``batch``, differentiable.

        Args:
            batch: TensorDict with batch_size ``[N, M, b]`` (see :meth:`update`).
            noise: optional ``[N, M, 2, b, A]`` standard-normal draws for the two action
                samples (index 0: next-state action of the target, 1: actor-loss action);
                drawn from torch's RNG when ``None``.

        Returns:
            TensorDict ``[N, M]`` with ``loss_actor``, ``loss_qvalue``, ``loss_alpha``
            (with graphs) and ``alpha``, ``entropy`` (detached); with ``action_prior``
            also ``loss_prior`` (with graph) and ``kl_prior`` (detached).
        """
        return self._as_tensordict(self._losses(batch, noise))

    def _losses(self, batch: TensorDictBase, noise: Tensor | None) -> dict[str, Tensor]:
        data, size = self._unpack(batch)
        return self._member_losses(*data, self._check_noise(noise, size).flatten(0, 1))

    def _member_losses(self, *data: Tensor) -> dict[str, Tensor]:
        """The backend's losses ``[K]`` of ``data`` (``_unpack``'s tensors and the noise, ``[K, ...]``)."""
        return self._backend.losses(
            self.log_alpha.flatten(),
            *data,
            gamma=self.gamma,
            target_entropy=self.target_entropy,
            loss_function=self.loss_function,
            **({"target_kl": self.target_kl} if self.action_prior else {}),
        )

    def _as_tensordict(self, losses: dict[str, Tensor]) -> TensorDict:
        return TensorDict(
            {key: losses[key].view(self._shape) for key in (*LOSS_KEYS, *PRIOR_LOSS_KEYS) if key in losses},
            batch_size=self._shape,
        )

    def update(self, batch: TensorDictBase, noise: Tensor | None = None) -> TensorDict:
        """One SAC step of every member on its own slice of ``batch``.

        Computes the losses (clipped double-Q target with the entropy bonus, actor loss,
        temperature loss), back-propagates their sum (members do not share parameters, so
        each gets exactly its own gradient), optionally clips each member's gradients,
        makes one Adam step over all stacked parameters (the same as one Adam per member)
        and moves the target critics by Polyak averaging. For several updates per env step
        call it several times.

        Args:
            batch: TensorDict with batch_size ``[N, M, b]``: ``"observation"``,
                ``"action"``, ``("next", "observation")``, ``("next", "reward")`` and
                ``("next", "terminated")`` (``[..., 1]``). Only ``terminated`` stops the
                bootstrap (a time-limit truncation bootstraps); other keys are ignored.
            noise: see :meth:`loss`.

        Returns:
            TensorDict ``[N, M]`` of detached ``loss_actor``, ``loss_qvalue``,
            ``loss_alpha``, ``alpha`` (before the step) and ``entropy``; with
            ``action_prior`` also ``kl_prior`` (the batch mean of the sampled estimate of
            ``KL(pi || p_a)`` that the actor loss uses) and ``loss_prior`` (the prior's loss,
            the closed-form ``KL(pi || p_a)``, batch mean).
        """
        data, size = self._unpack(batch)
        data.append(self._check_noise(noise, size).flatten(0, 1))
        step = self._captured_step(data) if self.cudagraphs else self._step
        return self._as_tensordict(step(*data))

    def _step(
        self, observation: Tensor, action: Tensor, next_observation: Tensor, reward: Tensor,
        not_terminated: Tensor, noise: Tensor,
    ) -> dict[str, Tensor]:
        """The update on ``[K, b, ...]`` tensors (``_unpack``'s and the noise); detached losses ``[K]``.

        What ``cudagraphs=True`` captures: it reads no value back to the host (no ``.item()``,
        no Python branch on a tensor's value) and creates no tensor on the host
        (``tests/test_policy_ensemble.py::test_the_update_reads_nothing_back_to_the_host``).
        """
        data = (observation, action, next_observation, reward, not_terminated, noise)
        if self._fast_update:
            # bmm backend: losses and gradients without autograd, the same numbers
            losses = self._backend.sac_step(
                self.log_alpha, *data,
                gamma=self.gamma, target_entropy=self.target_entropy, loss_function=self.loss_function,
            )
        else:
            losses = self._member_losses(*data)
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
        return {key: value.detach() for key, value in losses.items()}

    def _captured_step(self, data: list[Tensor]):
        """:meth:`_step` as a CUDA graph (``cudagraphs=True``), captured for these input shapes.

        ``CudaGraphModule`` runs the first call eagerly and the second eagerly and captured
        (both on a side stream; a compiled loss gets one more eager call, to compile first),
        then copies each call's inputs into the graph's static buffers and replays it.
        """
        shapes = tuple((x.shape, x.dtype) for x in data)
        if self._graph is None or self._graph_shapes != shapes:
            from tensordict.nn import CudaGraphModule

            self._graph = CudaGraphModule(self._step, warmup=3 if self.compiled else 2, device=self.device)
            self._graph_shapes = shapes
        return self._graph

    def _clip_per_member(self, params: list[Tensor]) -> None:
        """Scale each member's gradients (dims [N, M] lead) to norm <= grad_clip_norm."""
        ens_dims = 2
        grads = [p.grad for p in params if p.grad is not None]
        sq = sum(g.pow(2).flatten(ens_dims).sum(-1) for g in grads)
        coef = (self.grad_clip_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(*coef.shape, *([1] * (g.ndim - ens_dims))))

    # ------------------------------------------------------------------ acting
    @property
    def indexed_policy(self) -> TensorDictModule:
        """Acts with member ``"policy_index"`` (flat ``n * M + m``) in each env.

        Reads ``"observation"`` ``[*B, O]`` and ``"policy_index"`` ``[*B]`` or ``[*B, 1]``
        (any env batch ``*B``, including none), writes ``"action"`` ``[*B, A]``. Samples
        under ``ExplorationType.RANDOM`` (and when none is set), ``tanh(loc)`` under
        ``DETERMINISTIC``. Works as a TorchRL collector policy.
        """
        return self._acting["indexed"]

    @property
    def ensemble_policy(self) -> TensorDictModule:
        """Acts with every member at once: ``"observation"`` ``[N, M, *B, O]`` -> ``"action"``.

        Member (n, m) acts on slice ``[n, m]`` (the imagined-rollout env's layout).
        """
        return self._acting["all"]

    @property
    def prior_policy(self) -> TensorDictModule:
        """Acts with every member's action prior: ``"observation"`` ``[N, M, *B, O]`` -> ``"action"``.

        The same interface as :attr:`ensemble_policy` (member (n, m)'s prior p_a(a|s) acts on
        slice ``[n, m]``, sampling under ``ExplorationType.RANDOM``), for imagined rollouts
        with the prior as the rollout policy. Only with ``action_prior=True``.
        """
        if not self.action_prior:
            raise ValueError("prior_policy needs PolicyEnsemble(..., action_prior=True); this one has none")
        return self._acting["prior"]

    def prior_member(self, n: int, m: int) -> ProbabilisticActor:
        """A standalone TorchRL ``ProbabilisticActor`` holding a copy of member (n, m)'s action prior."""
        if not self.action_prior:
            raise ValueError("prior_member needs PolicyEnsemble(..., action_prior=True); this one has none")
        self._check_member(n, m)
        return load_member(self._new_actor(prior=True), self.prior_params[int(n), int(m)])

    def member(self, n: int | Tensor, m: int | Tensor) -> ProbabilisticActor:
        """A standalone TorchRL ``ProbabilisticActor`` holding a copy of member (n, m)'s weights.

        ``n`` and ``m`` are ints or 0-d integer tensors; for a flat ``"policy_index"`` ``i``
        use ``member(*ens.member_index(i))``. The actor reads ``"observation"`` and writes
        ``"loc"``, ``"scale"``, ``"action"``; it needs nothing from this package (see
        ``make_sac_actor`` for its exact structure).
        """
        n, m = self._check_member(n, m)
        return load_member(self._new_actor(), self.actor_params[n, m])

    def member_critics(
        self, n: int | Tensor, m: int | Tensor, *, target: bool = False
    ) -> list[ValueOperator]:
        """Copies of member (n, m)'s two critics (or its target critics) as ``ValueOperator``."""
        n, m = self._check_member(n, m)
        source = self.target_critic_params if target else self.critic_params
        return [load_member(self._new_critic(), source[n, m, j]) for j in range(2)]

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        """The optimizer's state (saved by ``state_dict()`` under ``"_extra_state"``)."""
        return {"optimizer": self.optimizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        # the optimizer's flags are this ensemble's, not the saved ones: a checkpoint of an
        # eager update resumes captured, and the other way round
        for group in self.optimizer.param_groups:
            group.update(self._adam_kwargs())
        self._graph = None  # a captured update holds the Adam state just replaced: capture anew

    def __repr__(self) -> str:
        """A one-screen summary (the stacked parameter TensorDicts would print 100+ lines)."""
        alpha = self.log_alpha.detach().exp().cpu()
        n_params = sum(p.numel() for p in self.parameters())
        a_min, a_max = float(alpha.min()), float(alpha.max())
        alpha_text = f"{a_min:.3g}" if a_min == a_max else f"{a_min:.3g}..{a_max:.3g}"
        return (
            f"{type(self).__name__}(\n"
            f"    ensemble_shape=[{self._shape[0]}, {self._shape[1]}] ({self.num_members} SAC members),\n"
            f"    observation_dim={self.observation_dim}, action_dim={self.action_dim},\n"
            f"    actor_hidden={list(self.actor_hidden)}, critic_hidden={list(self.critic_hidden)} (2 critics + 2 targets),\n"
            f"    activation={self.activation.__name__}, backend={self.backend!r}, compiled={self.compiled}, cudagraphs={self.cudagraphs},\n"
            f"    device={self.device}, gamma={self.gamma:g}, tau={self.tau:g}, alpha={alpha_text}, parameters={n_params:,})"
        )

    def extra_repr(self) -> str:
        return (
            f"ensemble_shape={list(self._shape)}, observation_dim={self.observation_dim}, "
            f"action_dim={self.action_dim}, backend={self.backend!r}, device={self.device}"
        )
