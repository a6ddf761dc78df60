"""Replay: real buffer, per-member model buffers, the exact-lambda mixed sampler, MBPO capacity."""

from __future__ import annotations

import collections

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.envs.transforms import RenameTransform

from torchrl_psmbpo.replay.buffers import (
    TRANSITION_KEYS,
    MixedBatchSampler,
    ModelReplay,
    make_real_buffer,
    mbpo_model_capacity,
    valid_after_termination,
)

N, M = 2, 3


def _transitions(ids: torch.Tensor, member: torch.Tensor | float) -> TensorDict:
    """Transitions whose observation is (member, id): member -1 marks real data."""
    shape = ids.shape
    member = torch.as_tensor(member, dtype=torch.float32).expand(shape)
    obs = torch.stack([member, ids.float()], dim=-1)
    return TensorDict(
        {
            "observation": obs,
            "action": torch.zeros(*shape, 1),
            ("next", "observation"): obs + 1,
            ("next", "reward"): ids.float().unsqueeze(-1),
            ("next", "terminated"): torch.zeros(*shape, 1, dtype=torch.bool),
            ("next", "done"): torch.zeros(*shape, 1, dtype=torch.bool),
        },
        batch_size=shape,
    )


def _member_ids() -> torch.Tensor:
    return torch.arange(N * M, dtype=torch.float32).view(N, M, 1)


def _imagined(k: int, start: int = 0) -> TensorDict:
    ids = torch.arange(start, start + k).expand(N, M, k)
    return _transitions(ids, _member_ids())


def _real_buffer(size: int = 1000, **kwargs) -> TensorDictReplayBuffer:
    rb = make_real_buffer(10_000, seed=0, **kwargs)
    rb.extend(_transitions(torch.arange(size), -1.0))
    return rb


@pytest.mark.parametrize("real_ratio", [0.0, 0.05, 0.25, 0.3, 0.5, 0.95, 1.0])
def test_batch_has_exactly_round_lambda_b_real_transitions_per_member(real_ratio):
    b = 10
    model = ModelReplay((N, M), 50, seed=0)
    model.extend(_imagined(40))
    sampler = MixedBatchSampler(_real_buffer(), model, real_ratio, b, seed=0)
    for _ in range(3):
        batch = sampler.sample()
        assert batch.batch_size == (N, M, b)
        is_real = batch["is_real"]
        assert is_real.dtype == torch.bool
        assert (is_real.sum(-1) == round(real_ratio * b)).all()
        source = batch["observation"][..., 0]
        assert (source[is_real] == -1).all(), "an is_real entry came from a model buffer"
        member = _member_ids().expand(N, M, b)
        assert torch.equal(source[~is_real], member[~is_real]), "member saw another's data"
    assert sampler.num_real == round(real_ratio * b)


def test_real_draws_are_independent_per_member():
    model = ModelReplay((N, M), 50, seed=0)
    model.extend(_imagined(40))
    sampler = MixedBatchSampler(_real_buffer(), model, 0.5, 64, seed=0)
    real_ids = sampler.sample()["observation"][..., :32, 1].reshape(N * M, 32)
    for i in range(N * M):
        for j in range(i + 1, N * M):
            assert not torch.equal(real_ids[i], real_ids[j])


def test_model_buffers_are_isolated_circular_buffers_with_masks():
    capacity = 7
    model = ModelReplay((N, M), capacity, seed=1)
    rng = torch.Generator().manual_seed(0)
    reference = [collections.deque(maxlen=capacity) for _ in range(N * M)]
    start = 0
    for k in (3, 5, 12, 1, 4, 9):  # 12 > capacity: only the last kept 7 survive
        mask = torch.rand(N, M, k, generator=rng) < 0.7
        counts = model.extend(_imagined(k, start), mask=mask)
        for i in range(N * M):
            kept = torch.arange(start, start + k)[mask.view(N * M, k)[i]]
            reference[i].extend(kept.tolist())
        assert torch.equal(counts, mask.sum(-1))
        start += k
        sizes = torch.tensor([len(r) for r in reference]).view(N, M)
        assert torch.equal(model.sizes, sizes)
        stored = model.data["observation"]  # [N, M, capacity, 2]
        for i in range(N * M):
            n, m = divmod(i, M)
            rows = stored[n, m, : len(reference[i])]
            assert (rows[:, 0] == i).all()
            assert sorted(rows[:, 1].long().tolist()) == sorted(reference[i])
        if model.min_size:  # members hold different amounts until they are full
            batch = model.sample(200)
            for i in range(N * M):
                n, m = divmod(i, M)
                assert (batch["observation"][n, m, :, 0] == i).all()
                assert set(batch["observation"][n, m, :, 1].long().tolist()) == set(reference[i])


def test_sampling_is_uniform_over_a_members_data():
    model = ModelReplay((1, 1), 10, seed=2)
    model.extend(_transitions(torch.arange(4).view(1, 1, 4), 0.0))
    ids = model.sample(8000)["observation"][0, 0, :, 1].long()
    counts = torch.bincount(ids, minlength=4).double()
    chi2 = float(((counts - 2000) ** 2 / 2000).sum())
    assert counts[4:].sum() == 0 and chi2 < 16.266  # 99.9% quantile, 3 degrees of freedom


def test_valid_after_termination_keeps_the_terminal_step():
    term = torch.tensor([[False, True, False, True], [False, False, False, False]])
    expected = torch.tensor([[True, True, False, False], [True, True, True, True]])
    assert torch.equal(valid_after_termination(term, 1), expected)
    assert torch.equal(valid_after_termination(term.T, 0), expected.T)


def test_extend_rollout_drops_steps_after_an_imagined_termination():
    b, r = 2, 4
    ids = torch.arange(N * M * b * r).view(N, M, b, r)
    rollout = _transitions(ids, _member_ids().unsqueeze(-1))
    terminated = torch.zeros(N, M, b, r, 1, dtype=torch.bool)
    terminated[0, 1, 0, 1] = True  # keep steps 0, 1 of that rollout
    terminated[1, 2, 1, 0] = True  # keep step 0 only
    rollout.set(("next", "terminated"), terminated)
    rollout.set("loc", torch.zeros(N, M, b, r, 1))
    model = ModelReplay((N, M), 100, seed=0, keys=TRANSITION_KEYS)
    counts = model.extend_rollout(rollout)
    expected = torch.full((N, M), b * r)
    expected[0, 1] -= 2
    expected[1, 2] -= 3
    assert torch.equal(counts, expected) and torch.equal(model.sizes, expected)
    assert "loc" not in model.keys
    stored = set(model.data["next", "reward"][0, 1, : expected[0, 1], 0].long().tolist())
    dropped = {int(ids[0, 1, 0, 2]), int(ids[0, 1, 0, 3])}
    assert stored == set(ids[0, 1].flatten().tolist()) - dropped


def test_resize_keeps_each_members_newest_transitions_in_order():
    model = ModelReplay((N, M), 5, seed=0)
    model.extend(_imagined(8))  # wrapped: holds 3..7
    mask = torch.ones(N, M, 2, dtype=torch.bool)
    mask[1, 1] = False
    model.extend(_imagined(2, 8), mask=mask)  # member (1, 1) still holds 3..7, others 5..9
    model.resize(3)
    assert model.capacity_per_member == 3
    newest = model.data["observation"][..., 1].long()
    assert newest[0, 0].tolist() == [7, 8, 9] and newest[1, 1].tolist() == [5, 6, 7]
    model.extend(_imagined(1, 10))
    assert model.data["observation"][0, 0, :, 1].long().tolist() == [10, 8, 9]
    model.resize(6)
    assert model.data["observation"][0, 0, :3, 1].long().tolist() == [8, 9, 10]
    assert torch.equal(model.sizes, torch.full((N, M), 3))


def test_state_dict_round_trip_reproduces_samples():
    real = _real_buffer()
    model = ModelReplay((N, M), 20, seed=3)
    model.extend(_imagined(30))
    sampler = MixedBatchSampler(real, model, 0.25, 16, seed=4)
    sampler.sample()
    states = (real.state_dict(), model.state_dict(), sampler.state_dict())
    expected = [sampler.sample() for _ in range(3)]

    real2 = make_real_buffer(10_000, seed=9)
    model2 = ModelReplay((N, M), 5, seed=9)
    real2.load_state_dict(states[0])
    model2.load_state_dict(states[1])
    sampler2 = MixedBatchSampler(real2, model2, 0.25, 16, seed=9)
    sampler2.load_state_dict(states[2])
    assert model2.capacity_per_member == 20
    for batch in expected:
        assert (sampler2.sample() == batch).all()


class _ReferenceBuffers:
    """Plain Python model of the per-member buffers: each member a list, newest last."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items = [[[] for _ in range(M)] for _ in range(N)]

    def extend(self, ids: torch.Tensor, mask: torch.Tensor) -> None:
        for n in range(N):
            for m in range(M):
                kept = ids[n, m][mask[n, m]].tolist()
                self.items[n][m] = (self.items[n][m] + kept)[-self.capacity:]

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        for n in range(N):
            for m in range(M):
                self.items[n][m] = self.items[n][m][-capacity:]


def _stored_ids(model: ModelReplay) -> list[list[list[int]]]:
    """Each member's stored ids, sorted (ids grow with time, so sorted = chronological)."""
    ids = model.data["observation"][..., 1].long()
    sizes = model.sizes
    return [
        [sorted(ids[n, m, : int(sizes[n, m])].tolist()) for m in range(M)] for n in range(N)
    ]


def test_resize_keeps_exactly_the_newest_transitions_through_random_masks_and_wraps():
    gen = torch.Generator().manual_seed(0)
    model = ModelReplay((N, M), 7, seed=0)
    reference = _ReferenceBuffers(7)
    next_id = 0
    for capacity in (7, 3, 11, 2, 2, 16, 5):  # shrink, grow, tiny, no-op, grow, shrink
        model.resize(capacity)
        reference.resize(capacity)
        for _ in range(4):
            k = int(torch.randint(1, 9, (), generator=gen))
            ids = torch.arange(next_id, next_id + k).expand(N, M, k)
            next_id += k
            mask = torch.rand(N, M, k, generator=gen) < 0.7
            model.extend(_transitions(ids, _member_ids()), mask=mask)
            reference.extend(ids, mask)
            assert model.capacity_per_member == capacity
            assert _stored_ids(model) == reference.items
            assert model.sizes.tolist() == [[len(x) for x in row] for row in reference.items]
        if model.min_size:  # every sample comes from its own member's newest transitions
            batch = model.sample(64)
            for n in range(N):
                for m in range(M):
                    assert (batch["observation"][n, m, :, 0] == n * M + m).all()
                    assert set(batch["observation"][n, m, :, 1].long().tolist()) <= set(
                        reference.items[n][m]
                    )


def test_resize_before_data_and_after_a_state_dict_round_trip():
    empty = ModelReplay((N, M), 10, seed=0)
    empty.resize(4)
    empty.extend(_imagined(6))
    assert empty.capacity_per_member == 4 and _stored_ids(empty)[0][0] == [2, 3, 4, 5]

    model = ModelReplay((N, M), 10, seed=1)
    model.extend(_imagined(13))
    model.resize(4)  # newest 9..12
    restored = ModelReplay((N, M), 50, seed=7)
    restored.load_state_dict(model.state_dict())
    for buffer in (model, restored):
        buffer.extend(_imagined(2, 13))  # overwrites 9, 10
        buffer.resize(6)
        buffer.extend(_imagined(3, 15))  # fills up to 6, then overwrites 11
    assert _stored_ids(model) == _stored_ids(restored)
    assert _stored_ids(model)[1][2] == [12, 13, 14, 15, 16, 17]
    assert (model.sample(32) == restored.sample(32)).all()
    with pytest.raises(ValueError, match="capacity_per_member must be an int >= 1, got 0"):
        model.resize(0)


def test_lambda_one_needs_no_model_data_and_lambda_zero_no_real_data():
    real = _real_buffer()
    for model in (None, ModelReplay((N, M), 10)):
        sampler = MixedBatchSampler(real, model, 1.0, 8, ensemble_shape=(N, M), seed=0)
        batch = sampler.sample()
        assert batch.batch_size == (N, M, 8) and batch["is_real"].all()
        assert "index" not in batch.keys()
    empty_real = make_real_buffer(100)
    model = ModelReplay((N, M), 10)
    model.extend(_imagined(4))
    batch = MixedBatchSampler(empty_real, model, 0.0, 8).sample()
    assert not batch["is_real"].any()


def test_a_buffer_with_a_transform_is_sampled_through_its_own_sampler():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(1000))
    rb.append_transform(RenameTransform(["action"], ["act"], create_copy=True))
    rb.extend(_transitions(torch.arange(100), -1.0))
    model = ModelReplay((N, M), 10)
    model.extend(_imagined(4).set("act", torch.zeros(N, M, 4, 1)))
    batch = MixedBatchSampler(rb, model, 0.5, 8, seed=0).sample()
    assert "act" in batch.keys()
    assert (batch["is_real"].sum(-1) == 4).all()
    assert (batch["observation"][..., :4, 0] == -1).all()


def test_real_buffer_is_bounded_and_seeded():
    rb = make_real_buffer(50, seed=5)
    rb.extend(_transitions(torch.arange(120), -1.0))
    assert len(rb) == 50
    assert set(rb[:]["observation"][:, 1].long().tolist()) == set(range(70, 120))
    rb2 = make_real_buffer(50, seed=5)
    rb2.extend(_transitions(torch.arange(120), -1.0))
    assert torch.equal(rb.sample(10)["observation"], rb2.sample(10)["observation"])


def test_mbpo_model_capacity_follows_mbpo():
    # MBPO: rollout_batch_size 1e5 every model_train_freq 250 steps, epoch_length 1000,
    # model_retain_epochs 1 -> retain * rollout_batch_size * epoch_length / freq * length.
    mbpo_pool = int(1 * 100_000 * 1000 / 250 * 15)
    assert mbpo_model_capacity(100_000 // 250, 15, 1 * 1000) == mbpo_pool
    with pytest.raises(ValueError, match="rollout_length must be an int >= 1, got 0"):
        mbpo_model_capacity(400, 0, 1000)


@pytest.mark.parametrize("real_ratio", [-0.1, 1.5, float("nan")])
def test_real_ratio_outside_unit_interval_is_rejected(real_ratio):
    match = rf"real_ratio \(lambda\) must be a finite float in \[0, 1\], got {real_ratio}"
    with pytest.raises(ValueError, match=match):
        MixedBatchSampler(_real_buffer(10), ModelReplay((N, M), 10), real_ratio, 8)


@pytest.mark.parametrize(("shape", "match"), [((0, 3), r"\[0\] \(N, models\) .* got 0"),
                                              ((2, 0), r"\[1\] \(M, policies per model\) .* got 0"),
                                              ((2, 3, 4), r"\(N, M\)")])
def test_bad_ensemble_shape_is_rejected(shape, match):
    with pytest.raises(ValueError, match=match):
        ModelReplay(shape, 10)


def test_empty_buffers_and_bad_sizes_give_clear_errors():
    model = ModelReplay((N, M), 10)
    with pytest.raises(RuntimeError, match=r"real_ratio=0.5 < 1 .* empty"):
        MixedBatchSampler(_real_buffer(10), model, 0.5, 8).sample()
    mask = torch.ones(N, M, 3, dtype=torch.bool)
    mask[1, 2] = False
    model.extend(_imagined(3), mask=mask)
    with pytest.raises(RuntimeError, match=r"\[\[1, 2\]\] are empty"):
        model.sample(4)
    with pytest.raises(RuntimeError, match="real buffer is empty"):
        MixedBatchSampler(make_real_buffer(10), None, 1.0, 8).sample()
    with pytest.raises(ValueError, match="model_replay is None"):
        MixedBatchSampler(_real_buffer(10), None, 0.5, 8)
    with pytest.raises(ValueError, match="capacity_per_member must be an int >= 1, got 0"):
        ModelReplay((N, M), 0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        MixedBatchSampler(_real_buffer(10), None, 1.0, 0)
    with pytest.raises(ValueError, match=r"batch size \[N, M, ...\] = \[2, 3, ...\]"):
        model.extend(_transitions(torch.arange(4), 0.0))
    with pytest.raises(KeyError, match="lacks stored entries"):
        model.extend(_imagined(2).exclude("action"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_batches_on_cuda():
    real = make_real_buffer(1000, device="cuda", seed=0)
    real.extend(_transitions(torch.arange(100), -1.0))
    model = ModelReplay((N, M), 50, device="cuda", seed=0)
    model.extend(_imagined(10))
    batch = MixedBatchSampler(real, model, 0.25, 8, seed=0).sample()
    assert batch.device.type == "cuda" and (batch["is_real"].sum(-1) == 2).all()
    source = batch["observation"][..., 0]
    member = _member_ids().cuda().expand(N, M, 8)
    assert (source[~batch["is_real"]] == member[~batch["is_real"]]).all()


def test_a_restored_real_buffer_is_indexed_where_its_entries_live():
    # torchrl restores the storage as a TensorDict with no device, its entries where torch.load
    # put them (the GPU in a CUDA run): the sampler's index must follow the entries
    from torchrl_psmbpo.replay.buffers import _data_device

    real = make_real_buffer(100, seed=0)
    real.extend(_transitions(torch.arange(10), -1.0))
    restored = make_real_buffer(100, seed=0)
    restored.load_state_dict(real.state_dict())
    stored = restored.storage.get(slice(None))
    assert stored.device is None and _data_device(stored) == torch.device("cpu")
    on_meta = TensorDict({"observation": torch.zeros(3, 2, device="meta")}, [3])
    assert on_meta.device is None and _data_device(on_meta) == torch.device("meta")
    batch = MixedBatchSampler(restored, None, 1.0, 4, ensemble_shape=(N, M), seed=0).sample()
    assert batch.batch_size == torch.Size([N, M, 4]) and batch["is_real"].all()
