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

``--against-frozen`` adds the update as it was at commit 7d7b145 (``tests/frozen_policy_update.py``,
a frozen copy of the autograd update of 7d7b145, on a copy of the bmm ensemble's state) to the
same interleaved rounds, and prints the old/new ratio of wall-clock and of thread CPU time
(median over rounds of each round's ratio; CPU time leaves out the time the process waits for
a core, which is most of the wall time on a loaded machine). ``--profile`` runs
``torch.profiler`` over 20 updates of each bmm runner and prints the share of the profiled
self CPU time spent in ``aten::bmm``/``aten::baddbmm`` and the ``aten::copy_`` calls per update.

    .venv/bin/python bench/speed/bench_policy_ensemble.py                   # N=5, M=7 and N=M=1
    .venv/bin/python bench/speed/bench_policy_ensemble.py --rounds 15 --compile
    # the CPU protocol's shape, old against new (docs/policy_ensemble.md, "Speed of the update")
    .venv/bin/python bench/speed/bench_policy_ensemble.py --shapes 2x2,5x4 --hidden 128 --obs 5 --act 1 \
        --threads 1 --backends bmm --skip-loop --against-frozen --profile
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
from tensordict import TensorDict


from torch.profiler import ProfilerActivity, profile
from torchrl.objectives import SACLoss, SoftUpdate

# this checkout's components/ (as torchrl_psmbpo) and tests/, not an installed copy: the bench
# compares code versions
_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_ROOT))
_spec = importlib.util.spec_from_file_location(
    "torchrl_psmbpo", _ROOT / "components" / "__init__.py",
    submodule_search_locations=[str(_ROOT / "components")])
sys.modules["torchrl_psmbpo"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sys.modules["torchrl_psmbpo"])
from tests.helpers import sac_batch  # noqa: E402
from torchrl_psmbpo.policy.ensemble import PolicyEnsemble  # noqa: E402

MATMUL_OPS = ("aten::bmm", "aten::baddbmm")
FROZEN = "frozen update (7d7b145)"


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


def matmul_share(fn, batch, updates: int = 20) -> tuple[float, float, float]:
    """``(share of self CPU time in bmm/baddbmm, its share of the wall time, copy_ calls per
    update)`` in a ``torch.profiler`` run of ``updates`` calls of ``fn``."""
    for _ in range(3):
        fn(batch)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(updates):
            fn(batch)
    wall = time.perf_counter() - start
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    copies = sum(e.count for e in events if e.key == "aten::copy_")
    return matmul / total, matmul / 1e6 / wall, copies / updates


def bench(shape, args) -> None:
    n, m = shape
    k = n * m
    h = args.hidden
    torch.manual_seed(0)
    batch = sac_batch(n, m, args.batch, args.obs, args.act, terminated=0.05)
    runners = {}
    for backend in args.backends:
        ens = PolicyEnsemble(
            args.obs, args.act, (n, m), actor_hidden=(h, h), critic_hidden=(h, h), backend=backend
        )
        runners[f"ensemble[{backend}]"] = ens.update
        if backend == "bmm" and args.against_frozen:
            from tests.frozen_policy_update import FrozenUpdate

            runners[FROZEN] = FrozenUpdate(ens).update
        if args.compile:
            ens_c = PolicyEnsemble(
                args.obs, args.act, (n, m), actor_hidden=(h, h), critic_hidden=(h, h),
                backend=backend, compile=True,
            )
            runners[f"ensemble[{backend}, compile=True]"] = ens_c.update
            if backend == "bmm" and args.against_frozen:
                runners[f"{FROZEN}, compiled"] = FrozenUpdate(ens_c, compile=True).update
    if not args.skip_loop:
        runners["SACLoss loop"] = SACLoop(ens)
    a = torch.randn(k, h, h)
    w = torch.randn(k, h, h)
    runners["bmm yardstick"] = lambda _: torch.bmm(a, w)

    for fn in runners.values():  # warm-up (and compilation)
        for _ in range(2):
            fn(batch)
    times = {name: [] for name in runners}
    cpu_times = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, fn in runners.items():
            # the training loop calls update() G = 20 times in a row: time a few in a row
            reps = 20 if name == "bmm yardstick" else (1 if name == "SACLoss loop" else args.reps)
            t, c = time.perf_counter(), time.thread_time()
            for _ in range(reps):
                fn(batch)
            times[name].append((time.perf_counter() - t) / reps)
            cpu_times[name].append((time.thread_time() - c) / reps)

    med = {name: statistics.median(ts) for name, ts in times.items()}
    best = {name: min(ts) for name, ts in times.items()}
    base = "SACLoss loop" if "SACLoss loop" in runners else next(iter(runners))
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
        f"  {'':34s} {'median ms':>10s} {'best ms':>9s} {'cpu ms':>8s} {base[:9] + '/x':>11s} "
        f"{'GFLOP/s med':>12s} {'% of bmm med':>13s} {'% of bmm best':>14s}"
    )
    for name in runners:
        if name == "bmm yardstick":
            continue
        g_med, g_best = upd_flops / med[name], upd_flops / best[name]
        print(
            f"  {name:34s} {med[name] * 1e3:10.1f} {best[name] * 1e3:9.1f} "
            f"{statistics.median(cpu_times[name]) * 1e3:8.1f} {med[base] / med[name]:11.2f} "
            f"{g_med / 1e9:12.1f} {100 * g_med / peak_med:12.0f}% {100 * g_best / peak_best:13.0f}%"
        )
    for suffix in ("", ", compiled"):
        old, new = FROZEN + suffix, "ensemble[bmm" + ("]" if not suffix else ", compile=True]")
        if old in runners and new in runners:
            ratio = statistics.median(o / x for o, x in zip(times[old], times[new]))
            cpu_ratio = statistics.median(o / x for o, x in zip(cpu_times[old], cpu_times[new]))
            print(
                f"  old/new ({old} / {new}), same rounds: wall {ratio:.2f}x, "
                f"thread CPU time {cpu_ratio:.2f}x"
            )
    if args.profile:
        for name in ("ensemble[bmm]", FROZEN):
            if name in runners:
                share, wall_share, copies = matmul_share(runners[name], batch)
                print(
                    f"  profile, {name}: bmm/baddbmm {100 * share:.0f}% of the ops' self CPU time "
                    f"({100 * wall_share:.0f}% of the wall time), {copies:.0f} aten::copy_ per update"
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
    parser.add_argument("--skip-loop", action="store_true", help="do not time the SACLoss loop")
    parser.add_argument(
        "--against-frozen", action="store_true",
        help="also time the update of 7d7b145 (tests/frozen_policy_update.py) and print old/new",
    )
    parser.add_argument("--profile", action="store_true", help="print the matmul share (torch.profiler)")
    args = parser.parse_args()
    args.backends = args.backends.split(",")
    print(f"torchrl_psmbpo from {Path(sys.modules[PolicyEnsemble.__module__].__file__).parent.parent}")
    if args.threads:
        torch.set_num_threads(args.threads)
    for shape in args.shapes.split(","):
        n, m = (int(v) for v in shape.lower().split("x"))
        bench((n, m), args)


if __name__ == "__main__":
    main()
