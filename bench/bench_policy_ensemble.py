"""Speed of one full SAC update of the policy ensemble against a loop over TorchRL SACLoss agents.

One update = losses, backward, optimizer step(s), target update, for every member. Measured
in the same run, interleaved (so that load from other processes hits all alike):

* ``loop``: a Python loop over K TorchRL ``SACLoss`` agents (three Adams + ``SoftUpdate`` each);
* the ensemble (``backend="bmm"`` and ``"vmap"``, optionally compiled);
* a batched 256x256 matmul (``torch.bmm`` of ``[K, 256, 256]`` by ``[K, 256, 256]``), whose
  GFLOP/s is the yardstick for the update's achieved GFLOP/s (matmul FLOPs of the update,
  counted analytically, divided by its time).

Each round times the loop once (K agent updates in a row) and each ensemble ``--reps`` times
in a row (per-update average; the training loop calls ``update`` G = 20 times in a row).
Reported: median and best of the rounds. Prints figures; it is not a test.

    .venv/bin/python bench/bench_policy_ensemble.py                   # N=5, M=7 and N=M=1
    .venv/bin/python bench/bench_policy_ensemble.py --rounds 15 --compile
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tensordict import TensorDict


from torchrl.objectives import SACLoss, SoftUpdate

from components.policy.ensemble import PolicyEnsemble


def update_matmul_flops(obs: int, act: int, hidden: int, batch: int) -> float:
    """Matmul FLOPs of one SAC update of one member (2-hidden-layer MLPs, two critics).

    target: actor(s') + 2 target critics; critic loss: 2 critics forward, weight grads and
    input grads of layers 2-3; actor loss: actor forward, 2 critics (frozen) forward and
    input grads of every layer, actor weight grads and input grads of layers 2-3.
    """
    h = hidden
    actor_fwd = 2 * batch * (obs * h + h * h + h * 2 * act)
    critic_fwd = 2 * batch * ((obs + act) * h + h * h + h)
    critic_input_grads_23 = 2 * batch * (h * h + h)
    actor_input_grads_23 = 2 * batch * (h * h + h * 2 * act)
    return (
        3 * actor_fwd
        + 10 * critic_fwd
        + 2 * critic_input_grads_23
        + actor_input_grads_23
    )


def make_batch(n: int, m: int, b: int, obs: int, act: int) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.randn(n, m, b, obs),
            "action": torch.rand(n, m, b, act) * 2 - 1,
            "next": {
                "observation": torch.randn(n, m, b, obs),
                "reward": torch.randn(n, m, b, 1),
                "terminated": torch.rand(n, m, b, 1) < 0.05,
                "done": torch.zeros(n, m, b, 1, dtype=torch.bool),
            },
        },
        [n, m, b],
    )


class SACLoop:
    """K independent TorchRL SAC agents (the members' own weights), updated one after another."""

    def __init__(self, ens: PolicyEnsemble) -> None:
        self.agents = []
        n_, m_ = ens.ensemble_shape
        for n in range(n_):
            for m in range(m_):
                loss = SACLoss(ens.member(n, m), ens.member_critics(n, m), loss_function="l2")
                loss.make_value_estimator(gamma=0.99)
                opts = [
                    torch.optim.Adam(loss.actor_network_params.values(True, True), lr=3e-4),
                    torch.optim.Adam(loss.qvalue_network_params.values(True, True), lr=3e-4),
                    torch.optim.Adam([loss.log_alpha], lr=3e-4),
                ]
                self.agents.append((n, m, loss, opts, SoftUpdate(loss, tau=0.005)))

    def __call__(self, batch: TensorDict) -> None:
        for n, m, loss, opts, updater in self.agents:
            out = loss(batch[n, m])
            (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).backward()
            for opt in opts:
                opt.step()
                opt.zero_grad()
            updater.step()


def bench(shape, args) -> None:
    n, m = shape
    k = n * m
    h = args.hidden
    torch.manual_seed(0)
    batch = make_batch(n, m, args.batch, args.obs, args.act)
    runners = {}
    for backend in args.backends:
        ens = PolicyEnsemble(
            args.obs, args.act, (n, m), actor_hidden=(h, h), critic_hidden=(h, h), backend=backend
        )
        runners[f"ensemble[{backend}]"] = ens.update
        if args.compile:
            ens_c = PolicyEnsemble(
                args.obs, args.act, (n, m), actor_hidden=(h, h), critic_hidden=(h, h),
                backend=backend, compile=True,
            )
            runners[f"ensemble[{backend}, compiled]"] = ens_c.update
    runners["SACLoss loop"] = SACLoop(ens)
    a = torch.randn(k, h, h)
    w = torch.randn(k, h, h)
    runners["bmm yardstick"] = lambda _: torch.bmm(a, w)

    for fn in runners.values():  # warm-up (and compilation)
        for _ in range(2):
            fn(batch)
    times = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, fn in runners.items():
            # the training loop calls update() G = 20 times in a row: time a few in a row
            reps = 20 if name == "bmm yardstick" else (1 if name == "SACLoss loop" else args.reps)
            t = time.perf_counter()
            for _ in range(reps):
                fn(batch)
            times[name].append((time.perf_counter() - t) / reps)

    med = {name: statistics.median(ts) for name, ts in times.items()}
    best = {name: min(ts) for name, ts in times.items()}
    bmm_flops = 2 * h**3 * k
    upd_flops = update_matmul_flops(args.obs, args.act, h, args.batch) * k
    peak_med, peak_best = bmm_flops / med["bmm yardstick"], bmm_flops / best["bmm yardstick"]
    print(
        f"\nN={n}, M={m} (K={k}), hidden {h}x{h}, batch {args.batch}/member, obs {args.obs}, "
        f"act {args.act}, threads {torch.get_num_threads()}, rounds {args.rounds}"
    )
    print(
        f"  batched {h}x{h} matmul: {peak_med / 1e9:.1f} GFLOP/s median, "
        f"{peak_best / 1e9:.1f} best; update matmul work {upd_flops / 1e9:.2f} GFLOP"
    )
    print(
        f"  {'':28s} {'median ms':>10s} {'best ms':>9s} {'loop/x med':>11s} {'loop/x best':>12s} "
        f"{'GFLOP/s med':>12s} {'% of bmm med':>13s} {'% of bmm best':>14s}"
    )
    for name in runners:
        if name == "bmm yardstick":
            continue
        g_med, g_best = upd_flops / med[name], upd_flops / best[name]
        print(
            f"  {name:28s} {med[name] * 1e3:10.1f} {best[name] * 1e3:9.1f} "
            f"{med['SACLoss loop'] / med[name]:11.2f} {best['SACLoss loop'] / best[name]:12.2f} "
            f"{g_med / 1e9:12.1f} {100 * g_med / peak_med:12.0f}% {100 * g_best / peak_best:13.0f}%"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="5x7,1x1", help="comma-separated NxM")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--obs", type=int, default=17)
    parser.add_argument("--act", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--reps", type=int, default=3, help="ensemble updates in a row per round")
    parser.add_argument("--backends", default="bmm,vmap")
    parser.add_argument("--compile", action="store_true", help="also time compile=True")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    args.backends = args.backends.split(",")
    if args.threads:
        torch.set_num_threads(args.threads)
    for shape in args.shapes.split(","):
        n, m = (int(v) for v in shape.lower().split("x"))
        bench((n, m), args)


if __name__ == "__main__":
    main()
