"""Speed of the replay pieces at PS-MBPO's sizes: prints figures, asserts nothing.

The training loop draws a [N, M, 256] mixed batch G = 20 times per env step and extends the
model buffers once per env step with [N, M, B * R] imagined transitions.

    .venv/bin/python bench/speed/bench_replay.py [--threads 1] [--capacity 100000] [--device cpu]
        [--n 5] [--m 7] [--obs 17] [--act 6]
"""

from __future__ import annotations

import argparse
import time

import torch
from tensordict import TensorDict

from torchrl_psmbpo.replay.buffers import MixedBatchSampler, ModelReplay, make_real_buffer


def transitions(shape: tuple[int, ...], obs: int, act: int, device: torch.device) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.randn(*shape, obs),
            "action": torch.rand(*shape, act) * 2 - 1,
            ("next", "observation"): torch.randn(*shape, obs),
            ("next", "reward"): torch.randn(*shape, 1),
            ("next", "terminated"): torch.zeros(*shape, 1, dtype=torch.bool),
            ("next", "done"): torch.zeros(*shape, 1, dtype=torch.bool),
        },
        batch_size=shape,
    ).to(device)


def timeit(fn, repeats: int) -> float:
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--m", type=int, default=7)
    parser.add_argument("--obs", type=int, default=17)
    parser.add_argument("--act", type=int, default=6)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rollouts", type=int, default=400, help="B: start states per step")
    parser.add_argument("--length", type=int, default=1, help="R: rollout length")
    parser.add_argument("--capacity", type=int, default=100_000, help="per member")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n, m = args.n, args.m
    print(f"torch threads {torch.get_num_threads()}, device {device}, N={n} M={m}, "
          f"obs {args.obs}, act {args.act}, b={args.batch}, capacity/member {args.capacity}")

    real = make_real_buffer(1_000_000, device=device, seed=0)
    real.extend(transitions((100_000,), args.obs, args.act, device))
    model = ModelReplay((n, m), args.capacity, device=device, seed=0)
    chunk = transitions((n, m, args.rollouts * args.length), args.obs, args.act, device)
    while model.min_size < args.capacity:
        model.extend(chunk)
    print(f"model storage: {model.nbytes / 2**20:.0f} MiB "
          f"({model.nbytes / (n * m * args.capacity):.0f} B per transition)")

    t = timeit(lambda: model.extend(chunk), args.repeats)
    print(f"ModelReplay.extend [N, M, {args.rollouts * args.length}]: {t * 1e3:.2f} ms")
    mask = torch.rand(n, m, args.rollouts * args.length, device=device) < 0.8
    t = timeit(lambda: model.extend(chunk, mask=mask), args.repeats)
    print(f"ModelReplay.extend with a mask: {t * 1e3:.2f} ms")
    t = timeit(lambda: model.sample(args.batch), args.repeats)
    print(f"ModelReplay.sample [N, M, {args.batch}]: {t * 1e3:.2f} ms")
    t = timeit(lambda: real.sample(n * m * 13), args.repeats)
    print(f"real buffer sample of N*M*13 = {n * m * 13}: {t * 1e3:.2f} ms")
    for ratio in (0.05, 0.5, 1.0):
        sampler = MixedBatchSampler(real, model, ratio, args.batch)
        t = timeit(sampler.sample, args.repeats)
        print(f"MixedBatchSampler.sample lambda={ratio} [N, M, {args.batch}]: {t * 1e3:.2f} ms "
              f"(x20 per env step: {20 * t * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
