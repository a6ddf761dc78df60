"""Milliseconds per update of the policy ensemble: eager against torch.compile and CUDA graphs,
each checked against the eager update's numbers.

Modes (each a ``PolicyEnsemble`` built with these options, all from the same initial state):

* ``eager``: the default update (on CUDA the autograd update, on a CPU the hand-written one);
* ``cudagraphs``: ``cudagraphs=True``, the whole update captured as one CUDA graph (CUDA only);
* ``hand-written``, ``hand-written+cudagraphs``: the bmm backend's hand-written update, which
  is CPU-only by default (``_FAST_UPDATE_DEVICES``), let run on CUDA (CUDA only);
* ``compile``, ``compile+cudagraphs``: ``compile=True`` (the loss computation under
  ``torch.compile``), alone and captured. On a CPU, where ``compile=True`` is ignored, ``compile``
  is forced (the autograd update with the compiled losses) so that it runs at all.

For each mode: ``--check`` updates on fixed batches and noise, compared with the eager update's
(the largest absolute difference of any loss over those updates, and of any parameter, target
critic, temperature or Adam moment after them; "same" when both are within ``--tol``); then
``--warmup`` updates and ``--rounds`` rounds of ``--updates`` updates in a row on one batch
already on the device (the training loop calls ``update()`` G = 20 times per agent step), with
``torch.cuda.synchronize()`` before and after each round: the median and the best milliseconds per
update over the rounds. "setup s" is the wall time of the first three updates (compilation,
capture).

Prints a markdown table. With ``--out`` (default ``$OUT/update_capture.md`` when ``OUT`` is set)
also writes it there, and the numbers as JSON beside it, rewritten after every mode: a run stopped
by a time limit keeps the rows it finished. A mode that fails gets a row with its error, and the
others still run.

    python bench/speed/bench_update_capture.py     # paper scale (5 x 4, 256 wide, batch 256) on CUDA
    python bench/speed/bench_update_capture.py --device cpu --shape 1x2 --hidden 16 --batch 16 \\
        --obs 5 --act 2 --check 3 --warmup 1 --rounds 2 --updates 2   # a tiny end-to-end run on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import tensordict
import torch
from tensordict import TensorDict

import torchrl_psmbpo.policy.ensemble as ensemble_module
from torchrl_psmbpo.policy.ensemble import PolicyEnsemble

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from tests.helpers import sac_batch  # noqa: E402

CUDA_MODES = ("eager", "cudagraphs", "hand-written", "hand-written+cudagraphs", "compile", "compile+cudagraphs")
CPU_MODES = ("eager", "compile")
LOSSES = ("loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy")


def make_batch(n: int, m: int, b: int, obs: int, act: int, device: torch.device, seed: int) -> TensorDict:
    """A random ``[n, m, b]`` batch of transitions (5% terminal), drawn on the CPU, moved to ``device``."""
    return sac_batch(n, m, b, obs, act, terminated=0.05,
                     generator=torch.Generator().manual_seed(seed)).to(device)


@contextlib.contextmanager
def hand_written_on(device: torch.device):
    """Let the hand-written update run on ``device`` for the ensembles built inside."""
    saved = ensemble_module._FAST_UPDATE_DEVICES
    ensemble_module._FAST_UPDATE_DEVICES = (*saved, device.type)
    try:
        yield
    finally:
        ensemble_module._FAST_UPDATE_DEVICES = saved


def build(mode: str, args, device: torch.device, state: dict) -> PolicyEnsemble:
    parts = set(mode.split("+"))
    kwargs = dict(
        ensemble_shape=args.shape, actor_hidden=(args.hidden,) * 2, critic_hidden=(args.hidden,) * 2,
        device=device, compile="compile" in parts, cudagraphs="cudagraphs" in parts,
    )
    with hand_written_on(device) if "hand-written" in parts else contextlib.nullcontext():
        ens = PolicyEnsemble(args.obs, args.act, **kwargs)
    ens.load_state_dict(state)
    if "compile" in parts and not ens.compiled:  # a CPU ignores compile=True: force it
        ens._backend.compile()
        ens.compiled, ens._fast_update = True, False
    if "cudagraphs" in parts and not ens.cudagraphs:
        raise RuntimeError(f"cudagraphs=True is ignored on {device}")
    return ens


def snapshot(ens: PolicyEnsemble) -> dict[str, torch.Tensor]:
    """Parameters, target critics, temperatures and Adam moments, flat, as copies."""
    out = {}
    for name in ("actor_params", "critic_params", "target_critic_params"):
        for key, value in getattr(ens, name).items(True, True):
            out[f"{name}.{'.'.join(key)}"] = value.detach().clone()
    out["log_alpha"] = ens.log_alpha.detach().clone()
    for index, state in ens.optimizer.state_dict()["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            out[f"adam.{index}.{key}"] = state[key].detach().clone()
    return out


def run_mode(mode: str, args, device: torch.device, state: dict, inputs, reference) -> tuple[dict, tuple]:
    """One mode's row (and eager's losses and end state, the reference, taken from the first mode)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ens = build(mode, args, device, state)
    row = {"mode": mode, "path": "hand-written" if ens._fast_update else "autograd",
           "compiled": ens.compiled, "cudagraphs": ens.cudagraphs}
    # the same updates as eager's, from the same state
    losses = []
    sync()
    start = time.perf_counter()
    for i, (batch, noise) in enumerate(inputs):
        losses.append({k: v.clone() for k, v in ens.update(batch, noise).items()})
        if i == min(2, len(inputs) - 1):
            sync()
            row["setup_s"] = time.perf_counter() - start
    state_after = snapshot(ens)
    if reference is None:
        reference = (losses, state_after)
        row["loss_diff"] = row["state_diff"] = 0.0
    else:
        row["loss_diff"] = max(float((a[k] - b[k]).abs().max()) for a, b in zip(losses, reference[0]) for k in LOSSES)
        row["state_diff"] = max(float((state_after[k] - v).abs().max()) for k, v in reference[1].items())
    row["same"] = max(row["loss_diff"], row["state_diff"]) <= args.tol
    # timing: updates in a row on one batch already on the device, noise drawn by update()
    batch = inputs[0][0]
    for _ in range(args.warmup):
        ens.update(batch)
    sync()
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.updates):
            ens.update(batch)
        sync()
        times.append((time.perf_counter() - start) / args.updates * 1e3)
    row["ms_median"], row["ms_best"], row["ms_rounds"] = statistics.median(times), min(times), times
    return row, reference


def table(rows: list[dict], header: str) -> str:
    eager = next((r["ms_median"] for r in rows if r["mode"] == "eager" and "ms_median" in r), math.nan)
    lines = [header, "",
             "| mode | update path | compiled | cudagraphs | ms/update median (best) | eager / mode "
             "| max abs diff losses, state | same (tol) | setup s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['mode']} | error: {r['error']} | | | | | | | |")
            continue
        lines.append(
            f"| {r['mode']} | {r['path']} | {r['compiled']} | {r['cudagraphs']} | {r['ms_median']:.3f} "
            f"({r['ms_best']:.3f}) | {eager / r['ms_median']:.2f}x | {r['loss_diff']:.2e}, "
            f"{r['state_diff']:.2e} | {'yes' if r['same'] else 'NO'} | {r['setup_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--modes", default=None, help=f"comma-separated; default {','.join(CUDA_MODES)} "
                        f"on CUDA, {','.join(CPU_MODES)} on a CPU")
    parser.add_argument("--shape", default="5x4", help="NxM (default 5x4: the paper's 20 members)")
    parser.add_argument("--hidden", type=int, default=256, help="width of the actor's and critics' 2 layers")
    parser.add_argument("--batch", type=int, default=256, help="transitions per member")
    parser.add_argument("--obs", type=int, default=24, help="default 24, 6: walker-walk's sizes")
    parser.add_argument("--act", type=int, default=6)
    parser.add_argument("--check", type=int, default=10, help="updates compared with eager's")
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=50, help="updates per timed round")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="markdown file (default $OUT/update_capture.md if OUT is set)")
    args = parser.parse_args(argv)
    if args.check < 1:
        parser.error("--check must be >= 1")
    device = torch.device(args.device)
    args.shape = tuple(int(v) for v in args.shape.lower().split("x"))
    modes = (args.modes.split(",") if args.modes else CUDA_MODES if device.type == "cuda" else CPU_MODES)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(os.environ["OUT"]) / "update_capture.md" if os.environ.get("OUT") else None
    n, m = args.shape
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    header = (f"Policy-ensemble update, {n}x{m} = {n * m} members, {args.hidden}-wide actor and critics, batch "
              f"{args.batch} per member, obs {args.obs}, act {args.act}; {name}; torch {torch.__version__}, "
              f"tensordict {tensordict.__version__}; {args.check} updates checked, {args.rounds} rounds of "
              f"{args.updates} updates timed after {args.warmup}")
    print(f"torchrl_psmbpo from {Path(ensemble_module.__file__).parent.parent}", flush=True)

    torch.manual_seed(0)
    state = PolicyEnsemble(args.obs, args.act, args.shape, actor_hidden=(args.hidden,) * 2,
                           critic_hidden=(args.hidden,) * 2, device=device).state_dict()
    g = torch.Generator().manual_seed(1)
    inputs = [(make_batch(n, m, args.batch, args.obs, args.act, device, seed=i),
               torch.randn(n, m, 2, args.batch, args.act, generator=g).to(device)) for i in range(args.check)]
    rows, reference = [], None
    for mode in ["eager", *(m for m in modes if m != "eager")]:  # every check is against eager's
        try:
            row, reference = run_mode(mode, args, device, state, inputs, reference)
        except Exception as err:  # noqa: BLE001 -- one mode's failure must not stop the others
            traceback.print_exc()
            row = {"mode": mode, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
        rows.append(row)
        print(f"{mode}: " + ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("mode", "ms_rounds")),
              flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        text = table(rows, header)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            out.with_suffix(".json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
        if reference is None:
            print("the eager update failed: nothing to compare with", file=sys.stderr)
            return 1
    print()
    print(table(rows, header))
    # exit status 1 when a mode failed or a captured update differs from eager's (compiled
    # losses may differ in the last bits: reported, not a failure)
    bad = [r for r in rows if "error" in r or (not r["same"] and "compile" not in r["mode"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
