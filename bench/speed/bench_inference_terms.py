"""Cost of the two Marino & Yue terms: the action prior and the information term.

Measured in the same run, interleaved round by round (so that load from other processes hits
both variants alike), one thread:

* one ``PolicyEnsemble.update`` without and with ``action_prior=True`` (K = 2x2 members,
  128x128 MLPs, batch 256 per member, observation 17, action 6);
* one ``ImaginedRolloutEnv.step`` without and with ``information_weight > 0`` (a 7-member
  4x200 DynamicsEnsemble, N = 5 models used, M = 4 policies, B = 20 start states, the actions
  of a 5x4 256x256 PolicyEnsemble), and one 5-step rollout with the policy acting.

Each round times every variant ``--reps`` times in a row; reported: median and best round.

``--agent-step`` also times what one agent step of the default PS-MBPO config costs
(recipes/config.py: N = 5, M = 4, G = 20 updates of 256x256 members with batch 256, one
imagined step of B = 400 start states per member, rollout length 1 early in MBPO's schedule):
``G * update + policy + env step``, each term without and with the Marino & Yue option.
Prints figures; it is not a test.

    .venv/bin/python bench/speed/bench_inference_terms.py --rounds 7 --agent-step
    .venv/bin/python bench/speed/bench_inference_terms.py --prior-widths --rounds 9 --reps 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tensordict import TensorDict


from torchrl_psmbpo.policy.ensemble import PolicyEnsemble
from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble
from torchrl_psmbpo.world_model.imagined_env import ImaginedRolloutEnv
from torchrl_psmbpo.world_model.termination import never_terminates

OBS, ACT = 17, 6


def update_batch(obs: int, act: int) -> TensorDict:
    """A random ``[2, 2, 256]`` batch of transitions for ``PolicyEnsemble.update``."""
    shape = (2, 2, 256)
    return TensorDict({
        "observation": torch.randn(*shape, obs), "action": torch.rand(*shape, act) * 2 - 1,
        "next": {"observation": torch.randn(*shape, obs), "reward": torch.randn(*shape, 1),
                 "terminated": torch.zeros(*shape, 1, dtype=torch.bool)}}, list(shape))


def timed(fn, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--agent-step", action="store_true")
    parser.add_argument("--prior-widths", action="store_true",
                        help="only: one update on the CPU protocol's shapes without a prior and "
                             "with priors of 128x128, 64x64 and 32x32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.prior_widths:
        prior_widths(args)
        return
    torch.manual_seed(0)

    batch = update_batch(OBS, ACT)
    ensembles = {
        prior: PolicyEnsemble(
            OBS, ACT, (2, 2), actor_hidden=(128, 128), critic_hidden=(128, 128), action_prior=prior
        )
        for prior in (False, True)
    }
    model = DynamicsEnsemble(OBS, ACT, num_members=7, num_elites=5)
    policy = PolicyEnsemble(OBS, ACT, (5, 4)).ensemble_policy
    envs = {
        weight: ImaginedRolloutEnv(
            model, never_terminates, (5, 4, 20), members=[0, 1, 2, 3, 4], information_weight=weight
        )
        for weight in (0.0, 1.0)
    }
    start = TensorDict({"observation": torch.randn(20, OBS)}, [20])
    first = policy(envs[0.0].reset(start))

    cases = {
        "update, plain SAC": lambda: ensembles[False].update(batch),
        "update, action prior": lambda: ensembles[True].update(batch),
        "env step": lambda: envs[0.0].step(first.clone()),
        "env step, information": lambda: envs[1.0].step(first.clone()),
        "5-step rollout": lambda: envs[0.0].rollout(5, policy, tensordict=start),
        "5-step rollout, information": lambda: envs[1.0].rollout(5, policy, tensordict=start),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm-up
        fn()
    for _ in range(args.rounds):
        for name, fn in cases.items():
            times[name].append(timed(fn, args.reps))
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds x {args.reps} reps")
    for name, values in times.items():
        print(f"{name:30s} median {1e3 * statistics.median(values):7.2f} ms   best {1e3 * min(values):7.2f} ms")
    for a, b in (
        ("update, plain SAC", "update, action prior"),
        ("env step", "env step, information"),
        ("5-step rollout", "5-step rollout, information"),
    ):
        med = statistics.median(times[b]) / statistics.median(times[a]) - 1
        best = min(times[b]) / min(times[a]) - 1
        print(f"extra for '{b}': median {100 * med:+.0f}%, best {100 * best:+.0f}%")
    if args.agent_step:
        agent_step(args)


def prior_widths(args) -> None:
    """The CPU protocol (cpu_dmc on cartpole): K = 2x2, 128x128 actors and critics, b = 256,
    observation 5, action 1; update without a prior and with priors of three widths."""
    torch.manual_seed(0)
    obs, act = 5, 1
    batch = update_batch(obs, act)
    widths = {"no prior": None, "prior 128x128": (128, 128), "prior 64x64": (64, 64),
              "prior 32x32": (32, 32)}
    ensembles = {name: PolicyEnsemble(obs, act, (2, 2), actor_hidden=(128, 128),
                                      critic_hidden=(128, 128), action_prior=w is not None,
                                      **({"prior_hidden": w} if w else {}))
                 for name, w in widths.items()}
    times = {name: [] for name in ensembles}
    for _ in range(args.rounds):
        for name, ens in ensembles.items():
            times[name].append(timed(lambda: ens.update(batch), args.reps))
    base = statistics.median(times["no prior"])
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds x {args.reps} reps")
    for name, values in times.items():
        print(f"{name:14s} median {1e3 * statistics.median(values):6.2f} ms   best "
              f"{1e3 * min(values):6.2f} ms   {100 * (statistics.median(values) / base - 1):+.0f}%")


def agent_step(args) -> None:
    """Default PS-MBPO config: G * update(K = 20, 256x256, b = 256) + one imagined step [5, 4, 400]."""
    n, m, b, big_b, g = 5, 4, 256, 400, 20
    batch = TensorDict(
        {
            "observation": torch.randn(n, m, b, OBS),
            "action": torch.rand(n, m, b, ACT) * 2 - 1,
            "next": {
                "observation": torch.randn(n, m, b, OBS),
                "reward": torch.randn(n, m, b, 1),
                "terminated": torch.zeros(n, m, b, 1, dtype=torch.bool),
            },
        },
        [n, m, b],
    )
    ens = {prior: PolicyEnsemble(OBS, ACT, (n, m), action_prior=prior) for prior in (False, True)}
    small_prior = PolicyEnsemble(OBS, ACT, (n, m), action_prior=True, prior_hidden=(128, 128))
    model = DynamicsEnsemble(OBS, ACT, num_members=n, num_elites=n)
    envs = {w: ImaginedRolloutEnv(model, never_terminates, (n, m, big_b), information_weight=w) for w in (0.0, 1.0)}
    start = TensorDict({"observation": torch.randn(big_b, OBS)}, [big_b])
    cases = {
        "update K=20": lambda: ens[False].update(batch),
        "update K=20, action prior": lambda: ens[True].update(batch),
        "update K=20, prior 128x128": lambda: small_prior.update(batch),
        "1-step rollout [5,4,400]": lambda: envs[0.0].rollout(1, ens[False].ensemble_policy, tensordict=start),
        "1-step rollout, information": lambda: envs[1.0].rollout(1, ens[False].ensemble_policy, tensordict=start),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    for _ in range(max(3, args.rounds // 2)):
        for name, fn in cases.items():
            times[name].append(timed(fn, 2))
    med = {name: statistics.median(v) for name, v in times.items()}
    for name, value in med.items():
        print(f"{name:30s} median {1e3 * value:8.1f} ms   best {1e3 * min(times[name]):8.1f} ms")
    base = g * med["update K=20"] + med["1-step rollout [5,4,400]"]
    prior = g * med["update K=20, action prior"] + med["1-step rollout [5,4,400]"]
    small = g * med["update K=20, prior 128x128"] + med["1-step rollout [5,4,400]"]
    info = g * med["update K=20"] + med["1-step rollout, information"]
    print(f"agent step (G={g} updates + 1 imagined step): {1e3 * base:.0f} ms; with the prior "
          f"{1e3 * prior:.0f} ms ({100 * (prior / base - 1):+.1f}%); with a 128x128 prior "
          f"{1e3 * small:.0f} ms ({100 * (small / base - 1):+.1f}%); with the information term "
          f"{1e3 * info:.0f} ms ({100 * (info / base - 1):+.1f}%)")


if __name__ == "__main__":
    main()
