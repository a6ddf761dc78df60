"""Maximum-likelihood training of a :class:`~torchrl_psmbpo.world_model.dynamics.DynamicsEnsemble` (Algorithm 1, line 2).

MBPO's recipe (Janner et al. 2019, ``mbpo/models/bnn.py``): Gaussian negative log-likelihood
plus the PETS penalty on the learned log-variance bounds plus per-layer L2 weight decay, Adam,
per-member bootstrapped and shuffled minibatches, a held-out split (at most 5000 transitions),
early stopping once no member improved its validation loss by more than 1% for ``patience``
epochs, each member's best weights restored, and the ``num_elites`` best members marked elite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import ReplayBuffer
from torchrl.data.replay_buffers.storages import Storage
from tqdm import tqdm

from torchrl_psmbpo._checks import check_int, check_real
from torchrl_psmbpo.world_model._storage import storage_rows
from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble, check_last_dim

__all__ = ["DynamicsTrainer", "mbpo_weight_decay", "transitions_from"]

_LOG_2PI = math.log(2 * math.pi)


def mbpo_weight_decay(depth: int) -> tuple[float, ...]:
    """MBPO's per-layer L2 coefficients for ``depth`` hidden layers (``depth + 1`` linear layers).

    MBPO (4 hidden layers) uses ``(2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)``: first layer 2.5e-5,
    second 5e-5, the other hidden layers 7.5e-5 and the output layer 1e-4. Other depths follow
    the same rule.
    """
    n = depth + 1
    values = [7.5e-5] * n
    values[0] = 2.5e-5
    if n > 2:
        values[1] = 5e-5
    values[-1] = 1e-4
    return tuple(values)


def transitions_from(data: Any) -> TensorDictBase:
    """A flat ``[n]`` TensorDict view of the transitions held by ``data``.

    Accepts a TorchRL :class:`~torchrl.data.ReplayBuffer` (its storage is read directly, without
    sampling or transforms), a :class:`~torchrl.data.replay_buffers.Storage`, or a TensorDict of
    any batch shape. Tensor storages are sliced (a view, no copy).
    """
    if isinstance(data, (ReplayBuffer, Storage)):
        data = storage_rows(data, None, "training data is empty (0 transitions in the storage)")
    if not isinstance(data, TensorDictBase):
        raise TypeError(
            f"training data must be a torchrl ReplayBuffer, a Storage or a TensorDict, got {type(data).__name__}"
        )
    if data.batch_dims == 0:
        raise ValueError("training data has no batch dimension; expected a TensorDict of transitions [n]")
    if data.numel() == 0:
        raise ValueError(f"training data is empty (0 transitions, batch size {tuple(data.batch_size)})")
    return data if data.batch_dims == 1 else data.reshape(-1)


class DynamicsTrainer:
    """Trains a :class:`~torchrl_psmbpo.world_model.dynamics.DynamicsEnsemble` by maximum likelihood.

    Args:
        model (DynamicsEnsemble): the ensemble to train (in place).

    Keyword Args:
        lr (float, optional): Adam learning rate. Defaults to 1e-3 (MBPO).
        weight_decay (float or sequence of float, optional): L2 coefficient of each linear
            layer's weights (one float for all, or one per layer). Defaults to MBPO's per-layer
            values (:func:`mbpo_weight_decay`). Applied as coupled Adam weight decay, which equals
            MBPO's ``decay * l2_loss(W)`` term.
        batch_size (int, optional): minibatch size per member. Defaults to 256 (MBPO).
        holdout_ratio (float, optional): share of the data held out for validation. Defaults
            to 0.2 (MBPO).
        max_holdout (int, optional): cap on the held-out count. Defaults to 5000 (MBPO).
        patience (int, optional): stop after this many epochs in which no member improved its
            validation loss by more than ``improvement_threshold`` (relative). Defaults to 5.
        max_epochs (int, optional): hard cap on epochs per :meth:`train` call. Defaults to
            200, a bound on the cost of one call that early stopping normally reaches first
            (MBPO sets none; see docs/world_model.md). ``None``: until early stopping (needs a
            held-out split).
        bootstrap (bool, optional): each member trains on its own bootstrap resample of the
            training split (MBPO); otherwise on its own shuffle of it. Defaults to ``True``.
        seed (int, optional): seed of the trainer's generator (split, bootstrap, shuffles).
            ``None`` draws one from torch's global RNG, so ``torch.manual_seed`` reproduces runs.
        logvar_penalty (float, optional): weight of the log-variance bound penalty. Defaults
            to 0.01 (PETS/MBPO).
        improvement_threshold (float, optional): relative improvement that counts. Defaults to
            0.01 (MBPO).
        val_metric (str, optional): ``"mse"`` (MBPO, mbrl-lib) or ``"nll"``: the validation loss
            used for early stopping, best-weight snapshots and elites. Defaults to ``"mse"``.
        keep_start_weights (bool, optional): whether the weights a :meth:`train` call starts
            from count as a candidate for the best snapshot (mbrl-lib), so that a retraining can
            end with the weights it started from. Defaults to ``False``, as MBPO's ``bnn.py``
            (its snapshots restart at 1e10 on every call): every call keeps a trained epoch.
            With ``True`` and the held-out split redrawn on every call, the held-out points
            were mostly trained on by the previous call, the starting weights look best, and a
            model retrained every episode can stop learning (docs/world_model.md).
        nll_beta (float, optional): the beta of beta-NLL (Seitzer et al., "On the pitfalls of
            heteroscedastic uncertainty estimation with probabilistic neural networks", ICLR
            2022): each element's loss term is weighted by ``stop_grad(var ** beta)``. 0 is
            MBPO's Gaussian NLL; 1 gives the mean the gradient of a squared error. With 0 a
            member can explain a rare, sharply located target (a sparse reward) by a large
            variance instead of fitting its mean, and a model retrained from its previous
            weights keeps doing so (docs/world_model.md). Must be in [0, 1]. Defaults to 0.
        progress (bool, optional): show a tqdm bar per :meth:`train` call (on stderr) with the
            epoch, the members' mean training NLL and mean validation loss (``val_metric``), and
            the epochs since the last improvement. Defaults to ``False``; can be switched later
            with ``trainer.progress = True``.

    The loss of a minibatch is ``sum_e mean_{b,d}[w * ((mu - y)^2 exp(-logvar) + logvar)]`` over
    members ``e`` (MBPO's form; normalised targets; ``w = stop_grad(exp(nll_beta * logvar))``, 1
    by default), plus ``logvar_penalty * sum(max_logvar - min_logvar)``.
    Members share no parameter, so member ``e``'s loss moves only member ``e``.

    Examples:
        >>> from tensordict import TensorDict
        >>> model = DynamicsEnsemble(3, 1, num_members=4, num_elites=2, hidden=32, depth=2)
        >>> n = 512
        >>> obs, act = torch.randn(n, 3), torch.rand(n, 1) * 2 - 1
        >>> data = TensorDict({"observation": obs, "action": act,
        ...     "next": {"observation": obs + 0.1 * act, "reward": obs[:, :1]}}, [n])
        >>> trainer = DynamicsTrainer(model, max_epochs=3, seed=0)
        >>> metrics = trainer.train(data)
        >>> len(metrics["elites"])
        2
    """

    def __init__(
        self,
        model: DynamicsEnsemble,
        *,
        lr: float = 1e-3,
        weight_decay: float | Sequence[float] | None = None,
        batch_size: int = 256,
        holdout_ratio: float = 0.2,
        max_holdout: int | None = 5000,
        patience: int = 5,
        max_epochs: int | None = 200,
        bootstrap: bool = True,
        seed: int | None = None,
        logvar_penalty: float = 0.01,
        improvement_threshold: float = 0.01,
        val_metric: str = "mse",
        progress: bool = False,
        keep_start_weights: bool = False,
        nll_beta: float = 0.0,
    ) -> None:
        if not isinstance(model, DynamicsEnsemble):
            raise TypeError(f"model must be a DynamicsEnsemble, got {type(model).__name__}")
        check_real("lr", lr, low=0, low_open=True)
        check_int("batch_size", batch_size)
        check_real("holdout_ratio", holdout_ratio, low=0, high=1, high_open=True)
        if max_holdout is not None:
            check_int("max_holdout (or None)", max_holdout)
        check_int("patience", patience)
        if max_epochs is not None:
            check_int("max_epochs (or None)", max_epochs)
        if max_epochs is None and holdout_ratio == 0:
            raise ValueError("holdout_ratio=0 leaves no validation data for early stopping: set max_epochs")
        if val_metric not in ("mse", "nll"):
            raise ValueError(f"val_metric={val_metric!r} is not accepted; accepted: 'mse', 'nll'")
        check_real("nll_beta (0: MBPO's NLL, 0.5: beta-NLL's usual choice)", nll_beta,
                   low=0, high=1)
        n_layers = len(model.layers)
        if weight_decay is None:
            decays = mbpo_weight_decay(model.depth)
        elif isinstance(weight_decay, (int, float)):
            decays = (float(weight_decay),) * n_layers
        else:
            decays = tuple(float(w) for w in weight_decay)
            if len(decays) != n_layers:
                raise ValueError(
                    f"weight_decay has {len(decays)} values; the model has {n_layers} linear layers "
                    f"(depth={model.depth} hidden + output): give one float or {n_layers} values"
                )
        if any(d < 0 for d in decays):
            raise ValueError(f"weight_decay values must be >= 0, got {decays}")
        self.model = model
        self.lr = lr
        self.weight_decay = decays
        self.batch_size = batch_size
        self.holdout_ratio = holdout_ratio
        self.max_holdout = max_holdout
        self.patience = patience
        self.max_epochs = max_epochs
        self.bootstrap = bootstrap
        self.logvar_penalty = logvar_penalty
        self.improvement_threshold = improvement_threshold
        self.val_metric = val_metric
        self.progress = bool(progress)
        self.keep_start_weights = bool(keep_start_weights)
        self.nll_beta = float(nll_beta)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.generator = torch.Generator().manual_seed(seed)
        groups = [
            {"params": [layer.weight], "weight_decay": wd} for layer, wd in zip(model.layers, decays)
        ]
        groups.append(
            {
                "params": [layer.bias for layer in model.layers] + [model.min_logvar, model.max_logvar],
                "weight_decay": 0.0,
            }
        )
        # The fused kernel (CPU and CUDA) does the whole update in one pass: about 4x less
        # optimizer time than the per-parameter loop on this model (see docs/world_model.md).
        fused = model.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(groups, lr=lr, fused=fused or None)
        self.train_calls = 0
        self.total_epochs = 0

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Optimizer state, generator state and counters (the model has its own state_dict)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "train_calls": self.train_calls,
            "total_epochs": self.total_epochs,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict["optimizer"])
        self.generator.set_state(state_dict["generator"].cpu())  # map_location may have moved it
        self.train_calls = int(state_dict["train_calls"])
        self.total_epochs = int(state_dict["total_epochs"])

    # ------------------------------------------------------------------ data
    def _tensors(self, data: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        model = self.model
        td = transitions_from(data)
        keys = (model.in_keys[0], model.in_keys[1], model.out_keys[0], model.out_keys[1])
        tensors = []
        for key in keys:
            value = td.get(key, None)
            if value is None:
                raise KeyError(
                    f"training data has no entry {key!r}; it needs {list(keys)} (the model's in_keys and out_keys)"
                )
            if not torch.is_floating_point(value):
                value = value.float()
            bad = ~torch.isfinite(value)
            if bad.any():
                first = int(bad.reshape(value.shape[0], -1).any(-1).nonzero()[0, 0])
                raise ValueError(
                    f"training data {key!r} contains {int(bad.sum())} non-finite values (NaN or inf); "
                    f"first at transition {first}"
                )
            tensors.append(value)
        obs, act, next_obs, reward = tensors
        check_last_dim(f"training data {keys[0]!r}", obs, "observation_dim", model.observation_dim)
        check_last_dim(f"training data {keys[1]!r}", act, "action_dim", model.action_dim)
        return obs, act, next_obs, reward

    def _split_sizes(self, n: int) -> tuple[int, int]:
        n_val = int(n * self.holdout_ratio)
        if self.max_holdout is not None:
            n_val = min(n_val, self.max_holdout)
        n_train = n - n_val
        min_n = 2 if self.holdout_ratio == 0 else max(2 + 1, math.ceil(1 / self.holdout_ratio))
        if n == 0:
            raise ValueError("training data is empty (0 transitions)")
        if n_train < 2 or (self.holdout_ratio > 0 and n_val < 1):
            raise ValueError(
                f"training data has {n} transitions; with holdout_ratio={self.holdout_ratio} at least "
                f"{min_n} are needed (>= 2 to train on and >= 1 held out)"
            )
        return n_train, n_val

    # ------------------------------------------------------------------ training
    def _member_losses(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member MBPO loss term and squared error, both ``[E]`` (means over batch and dims)."""
        mean, logvar = self.model.network(x)
        sq = (mean - y).pow(2)
        term = sq * torch.exp(-logvar) + logvar
        if self.nll_beta:
            term = term * torch.exp(self.nll_beta * logvar.detach())
        return term.mean((1, 2)), sq.mean((1, 2))

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member Gaussian NLL (per dimension, normalised target space) and MSE on ``(x, y)``.

        ``x`` are normalised inputs ``[n, in]`` and ``y`` normalised targets ``[n, D + 1]``.
        """
        num = self.model.num_members
        nll = torch.zeros(num, device=x.device)
        mse = torch.zeros(num, device=x.device)
        n = x.shape[0]
        for s in range(0, n, chunk):
            xb, yb = x[s : s + chunk], y[s : s + chunk]
            mean, logvar = self.model.network(xb)
            sq = (mean - yb).pow(2)
            nll += 0.5 * (sq * torch.exp(-logvar) + logvar + _LOG_2PI).mean(-1).sum(-1)
            mse += sq.mean(-1).sum(-1)
        return nll / n, mse / n

    def _epoch_indices(self, n_train: int, boot: torch.Tensor | None) -> torch.Tensor:
        num = self.model.num_members
        perms = torch.stack([torch.randperm(n_train, generator=self.generator) for _ in range(num)])
        if boot is None:
            return perms
        return torch.gather(boot, 1, perms)

    def train(self, data: Any) -> dict[str, Any]:
        """Fits the normalisers and trains every member on ``data``; marks the elites.

        Args:
            data: a ReplayBuffer, a Storage or a TensorDict of transitions with the model's
                ``in_keys`` (``"observation"``, ``"action"``) and ``out_keys``
                (``("next", "observation")``, ``("next", "reward")``).

        Returns:
            a dict with ``epochs`` (run in this call), ``stopped_early``, ``num_train``,
            ``num_val``, ``train_nll`` / ``train_mse`` (per member, running means over the last
            epoch), ``val_nll`` / ``val_mse`` (per member, with the restored best weights),
            ``best_epoch`` (per member; 0 = the weights the call started from, only possible with
            ``keep_start_weights=True``), ``elites`` and
            ``history`` (per-epoch validation losses).
        """
        model = self.model
        device = model.device
        obs, act, next_obs, reward = self._tensors(data)
        n = obs.shape[0]
        n_train, n_val = self._split_sizes(n)
        perm = torch.randperm(n, generator=self.generator).to(obs.device)
        # One gather into model inputs/targets per call; epochs then only index into these.
        obs_p = obs[perm]
        x = model.make_inputs(obs_p, act[perm])
        y = model.make_targets(obs_p, next_obs[perm], reward[perm])
        del obs_p
        x, y = x.to(device), y.to(device)
        model.fit_normalizers(x[n_val:], y[n_val:])
        with torch.no_grad():
            x = model.transform_inputs(x)
            y = model.transform_targets(y)
        x_val, y_val = x[:n_val], y[:n_val]
        x_train, y_train = x[n_val:], y[n_val:]

        num = model.num_members
        boot = (
            torch.randint(n_train, (num, n_train), generator=self.generator) if self.bootstrap else None
        )
        params = dict(model.named_parameters())
        best_params = {k: p.detach().clone() for k, p in params.items()}
        has_val = n_val > 0

        def val_loss() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            nll, mse = self.evaluate(x_val, y_val)
            return (mse if self.val_metric == "mse" else nll), nll, mse

        best_loss = torch.full((num,), float("inf"), device=device)
        history: list[list[float]] = []
        if has_val:
            start_loss, _, _ = val_loss()
            history.append(start_loss.tolist())
            if self.keep_start_weights:
                best_loss = start_loss
        best_epoch = torch.zeros(num, dtype=torch.long)
        epochs_since_update = 0
        epoch = 0
        stopped_early = False
        train_nll = torch.zeros(num, device=device)
        train_mse = torch.zeros(num, device=device)
        model.train()
        bar = tqdm(
            total=self.max_epochs,
            desc=f"dynamics fit ({n_train} train / {n_val} val)",
            unit="epoch",
            disable=not self.progress,
            leave=False,
        )
        while self.max_epochs is None or epoch < self.max_epochs:
            epoch += 1
            idx = self._epoch_indices(n_train, boot).to(device)
            run_nll = torch.zeros(num, device=device)
            run_mse = torch.zeros(num, device=device)
            for s in range(0, n_train, self.batch_size):
                b = idx[:, s : s + self.batch_size]
                nll_term, sq = self._member_losses(x_train[b], y_train[b])
                loss = nll_term.sum() + self.logvar_penalty * model.logvar_bound_penalty().sum()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                run_nll += nll_term.detach() * b.shape[1]
                run_mse += sq.detach() * b.shape[1]
            train_nll = 0.5 * (run_nll / n_train + _LOG_2PI)
            train_mse = run_mse / n_train
            if not has_val:
                if self.progress:
                    bar.set_postfix(train_nll=f"{float(train_nll.mean()):.4g}", refresh=False)
                    bar.update(1)
                continue
            current, _, _ = val_loss()
            history.append(current.tolist())
            relative = (best_loss - current) / best_loss.abs().clamp_min(1e-12)
            improved = torch.isinf(best_loss) | (relative > self.improvement_threshold)
            if improved.any():
                with torch.no_grad():
                    for k, p in params.items():
                        best_params[k][improved] = p.detach()[improved]
                best_loss = torch.where(improved, current, best_loss)
                best_epoch[improved.cpu()] = epoch
                epochs_since_update = 0
            else:
                epochs_since_update += 1
            if self.progress:
                bar.set_postfix(
                    train_nll=f"{float(train_nll.mean()):.4g}",
                    **{f"val_{self.val_metric}": f"{float(current.mean()):.4g}"},
                    no_improvement=f"{epochs_since_update}/{self.patience}",
                    refresh=False,
                )
                bar.update(1)
            if epochs_since_update >= self.patience:
                stopped_early = True
                break
        bar.close()
        model.eval()
        if has_val:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(best_params[k])
            score, val_nll, val_mse = val_loss()
        else:
            score = train_mse if self.val_metric == "mse" else train_nll
            val_nll = val_mse = torch.full((num,), float("nan"), device=device)
            best_epoch[:] = epoch
        elites = torch.argsort(score)[: model.num_elites]
        model.set_elites(elites)
        self.train_calls += 1
        self.total_epochs += epoch
        return {
            "epochs": epoch,
            "stopped_early": stopped_early,
            "num_train": n_train,
            "num_val": n_val,
            "train_nll": train_nll.cpu(),
            "train_mse": train_mse.cpu(),
            "val_nll": val_nll.cpu(),
            "val_mse": val_mse.cpu(),
            "best_epoch": best_epoch,
            "elites": model.elites,
            "history": history,
        }
