"""The same code on CUDA: updates agree with the CPU, checkpoints loaded onto the GPU resume,
every variant trains and resumes with ``run.device=cuda``, the update never waits for the GPU, and
its CUDA graph (``PolicyEnsemble(cudagraphs=True)``) gives the eager update's numbers. Skipped
without CUDA (CI has none); ``bench/checks/gpu_session.sh`` runs these on a GPU machine."""

from __future__ import annotations

import io
import math

import pytest
import torch
from helpers import sac_batch
from tensordict import TensorDict

from torchrl_psmbpo.policy.ensemble import PolicyEnsemble
from torchrl_psmbpo.replay.buffers import MixedBatchSampler, ModelReplay, make_real_buffer
from torchrl_psmbpo.sampling.posterior import PolicyPosterior
from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble
from torchrl_psmbpo.world_model.trainer import DynamicsTrainer
from torchrl_psmbpo.recipes.checkpoint import load_checkpoint, rng_state, set_rng_state
from torchrl_psmbpo.recipes.loop import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

OBS, ACT = 5, 2


def _batch(n: int, m: int, b: int, device: str, seed: int = 0) -> TensorDict:
    return sac_batch(n, m, b, OBS, ACT, terminated=0.2,
                     generator=torch.Generator().manual_seed(seed)).to(device)


def _onto_cuda(state):
    """What ``torch.load(map_location="cuda")`` makes of a saved state."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cuda", weights_only=False)


@pytest.mark.parametrize("backend", ["bmm", "vmap"])
def test_cuda_updates_equal_cpu_updates(backend):
    torch.manual_seed(0)
    cpu = PolicyEnsemble(OBS, ACT, (2, 2), actor_hidden=(32, 32), critic_hidden=(32, 32),
                         backend=backend)
    gpu = PolicyEnsemble(OBS, ACT, (2, 2), actor_hidden=(32, 32), critic_hidden=(32, 32),
                         backend=backend, device="cuda")
    gpu.load_state_dict(_onto_cuda(cpu.state_dict()))
    for step in range(3):
        noise = torch.randn(2, 2, 2, 16, ACT, generator=torch.Generator().manual_seed(step))
        out_cpu = cpu.update(_batch(2, 2, 16, "cpu"), noise)
        out_gpu = gpu.update(_batch(2, 2, 16, "cuda"), noise.cuda())
        for key in ("loss_actor", "loss_qvalue", "loss_alpha"):
            torch.testing.assert_close(out_gpu[key].cpu(), out_cpu[key], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.actor_params.data.cpu(), cpu.actor_params.data,
                               rtol=1e-4, atol=1e-5)


def test_fast_update_on_cuda_equals_the_autograd_update(monkeypatch):
    """The bmm backend's hand-written update (CPU-only by default until measured on a GPU) run
    on CUDA gives the autograd update's numbers on CUDA; prints both speeds at the CPU
    protocol's shape (K = 4, 128 wide, batch 256)."""
    import time

    import torchrl_psmbpo.policy.ensemble as ensemble_module

    torch.manual_seed(0)
    kwargs = dict(actor_hidden=(128, 128), critic_hidden=(128, 128), device="cuda")
    autograd = PolicyEnsemble(OBS, ACT, (2, 2), **kwargs)
    monkeypatch.setattr(ensemble_module, "_FAST_UPDATE_DEVICES", ("cpu", "cuda"))
    fast = PolicyEnsemble(OBS, ACT, (2, 2), **kwargs)
    assert fast._fast_update and not autograd._fast_update
    fast.load_state_dict(autograd.state_dict())
    batch = _batch(2, 2, 256, "cuda")
    for step in range(3):
        noise = torch.randn(2, 2, 2, 256, ACT, device="cuda")
        out_fast, out_autograd = fast.update(batch, noise), autograd.update(batch, noise)
        for key in ("loss_actor", "loss_qvalue", "loss_alpha"):
            torch.testing.assert_close(out_fast[key], out_autograd[key], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.actor_params.data, autograd.actor_params.data, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.critic_params.data, autograd.critic_params.data, rtol=1e-5, atol=1e-6)
    for name, ens in (("autograd", autograd), ("fast", fast)):
        for _ in range(5):
            ens.update(batch)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(50):
            ens.update(batch)
        torch.cuda.synchronize()
        print(f"{name} update on CUDA: {(time.perf_counter() - start) / 50 * 1e3:.2f} ms")


def test_rng_states_loaded_onto_cuda_restore_the_same_draws():
    # torch.load(map_location="cuda") moves saved RNG byte tensors to the GPU; torch takes RNG
    # states only as CPU byte tensors (the resume of a CUDA run failed on exactly this)
    posterior = PolicyPosterior(4, mode="ops", temperature=1.0, seed=0)
    real = make_real_buffer(100, device="cuda", seed=0)
    model = ModelReplay((2, 2), 20, device="cuda", seed=0)
    sampler = MixedBatchSampler(real, None, 1.0, 8, seed=0)
    dynamics = DynamicsEnsemble(OBS, ACT, num_members=2, num_elites=2).to("cuda")
    trainer = DynamicsTrainer(dynamics, seed=0)
    for obj in (posterior, model, sampler, trainer):
        generator = getattr(obj, "generator", None) or obj._generator
        saved = obj.state_dict()
        draws = torch.rand(4, generator=generator, device=generator.device)
        obj.load_state_dict(_onto_cuda(saved))
        again = torch.rand(4, generator=generator, device=generator.device)
        torch.testing.assert_close(again, draws, rtol=0, atol=0)

    torch.cuda.init()
    saved = rng_state()
    assert "torch_cuda" in saved
    expected = (torch.rand(3), torch.rand(3, device="cuda"))
    set_rng_state(_onto_cuda(saved))
    torch.testing.assert_close(torch.rand(3), expected[0], rtol=0, atol=0)
    torch.testing.assert_close(torch.rand(3, device="cuda"), expected[1], rtol=0, atol=0)


@pytest.mark.parametrize("variant", ["sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed",
                                     "ps-mbpo+prior+info"])
def test_every_variant_trains_and_resumes_on_cuda(tmp_path, variant):
    from test_training_loop import tiny  # the CPU loop tests' tiny config

    extra = ("policy.action_prior=true", "rollout.information_weight=1") if "+" in variant else ()
    name = variant.split("+")[0]
    half = train(tiny(name, "total_steps=220", "run.device=cuda", *extra), tmp_path)
    assert half["step"] == 220
    cfg = tiny(name, "total_steps=420", "run.device=cuda", *extra)
    resumed = train(cfg, tmp_path, resume=load_checkpoint(half["checkpoint"], cfg))
    assert resumed["step"] == 420 and math.isfinite(resumed["last_eval"])


# ---------------------------------------------------------------- no host sync, CUDA graphs
# (last in the file: constructing a CudaGraphModule takes TensorDict out of torch's pytree registry
# for the rest of the process, tensordict's own rule)
UPDATE_PATHS = ["autograd", "autograd-clip-prior", "hand-written"]


def _ensemble_for(path: str, monkeypatch, **kwargs) -> PolicyEnsemble:
    """A CUDA ensemble (2 x 3, 64 wide) whose update takes ``path``: the autograd update (what
    CUDA runs by default), with gradient clipping and the action prior, or the bmm backend's
    hand-written update (CPU-only by default until measured on a GPU)."""
    import torchrl_psmbpo.policy.ensemble as ensemble_module

    if path == "hand-written":
        monkeypatch.setattr(ensemble_module, "_FAST_UPDATE_DEVICES", ("cpu", "cuda"))
    if path == "autograd-clip-prior":
        kwargs.update(grad_clip_norm=0.5, action_prior=True)
    ens = PolicyEnsemble(OBS, ACT, (2, 3), actor_hidden=(64, 64), critic_hidden=(64, 64), device="cuda", **kwargs)
    assert ens._fast_update == (path == "hand-written")
    return ens


@pytest.mark.parametrize("path", UPDATE_PATHS)
def test_the_update_on_cuda_never_waits_for_the_gpu(path, monkeypatch):
    """Under torch's sync debug mode "error", any op of update() that makes the host wait for the
    GPU (``.item()``, a copy to the host, ``nonzero``, ...) raises; the CPU-side check of the same
    claim is tests/test_policy_ensemble.py::test_the_update_reads_nothing_back_to_the_host."""
    ens = _ensemble_for(path, monkeypatch)
    batch = _batch(2, 3, 64, "cuda")
    ens.update(batch)  # Adam's state and the hand-written update's workspace are made here
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        ens.update(batch)
        ens.update(batch, torch.randn(2, 3, 2, 64, ACT, device="cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _assert_same_state(got: PolicyEnsemble, expected: PolicyEnsemble, tol: float) -> None:
    """Parameters, target critics, temperatures and Adam moments within ``tol``."""
    names = ["actor_params", "critic_params", "target_critic_params"] + ["prior_params"] * expected.action_prior
    for name in names:
        for (key, a), b in zip(getattr(got, name).items(True, True), getattr(expected, name).values(True, True)):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=lambda m, n=name, k=key: f"{n} {k}: {m}")
    torch.testing.assert_close(got.log_alpha, expected.log_alpha, rtol=tol, atol=tol)
    got_state, expected_state = got.optimizer.state_dict()["state"], expected.optimizer.state_dict()["state"]
    assert got_state.keys() == expected_state.keys()
    for index, state in expected_state.items():
        for key, value in state.items():
            torch.testing.assert_close(got_state[index][key], value, rtol=tol, atol=tol)


@pytest.mark.parametrize("path", UPDATE_PATHS)
def test_cudagraphs_update_equals_the_eager_update(path, monkeypatch):
    """cudagraphs=True gives the eager update's losses and final state within 1e-5 over ten
    updates (the first two eager, the second also captured, then eight replays), on a fresh
    batch and fresh noise at every update (given, or drawn from torch's RNG, which both draw
    alike: the noise is drawn before the graph). After load_state_dict (new Adam state) and for
    a batch of another size, it captures anew and still agrees."""
    tol = 1e-5
    eager = _ensemble_for(path, monkeypatch)
    graphed = _ensemble_for(path, monkeypatch, cudagraphs=True)
    assert graphed.cudagraphs and not eager.cudagraphs and "cudagraphs=True" in repr(graphed)
    graphed.load_state_dict(eager.state_dict())  # eager's Adam flags are not taken over
    assert all(group["capturable"] for group in graphed.optimizer.param_groups)
    assert not any(group["capturable"] for group in eager.optimizer.param_groups)

    def updates(count: int, seed: int, b: int = 64) -> None:
        for i in range(count):
            batch = _batch(2, 3, b, "cuda", seed=seed + i)
            noise = None if i % 2 else torch.randn(2, 3, 2, b, ACT, device="cuda")
            torch.manual_seed(seed + i)
            expected = eager.update(batch, noise)
            torch.manual_seed(seed + i)
            got = graphed.update(batch, noise)
            assert set(got.keys()) == set(expected.keys())
            for key in expected.keys():
                torch.testing.assert_close(got[key], expected[key], rtol=tol, atol=tol,
                                           msg=lambda m, i=i, k=key: f"update {i}, {k}: {m}")
        _assert_same_state(graphed, eager, tol)

    updates(10, seed=0)
    graph = graphed._graph
    assert graph.counter == 2 and isinstance(graph.graph, torch.cuda.CUDAGraph)  # captured once
    first = graphed.update(_batch(2, 3, 64, "cuda", seed=50))  # a replay's outputs are copies:
    kept = first["loss_qvalue"].clone()  # the next replay does not overwrite them
    graphed.update(_batch(2, 3, 64, "cuda", seed=51))
    assert torch.equal(first["loss_qvalue"], kept)

    graphed.load_state_dict(eager.state_dict())  # back in step with eager; Adam's state replaced
    assert graphed._graph is None
    updates(4, seed=100)
    assert graphed._graph is not graph
    updates(4, seed=200, b=32)
    assert graphed._graph_shapes[0][0] == (6, 32, OBS)
