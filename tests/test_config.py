"""The training config: Hydra composition, presets, variants, short names, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from torchrl_psmbpo.recipes.cli import UserError, compose, expand_short_names, to_config
from torchrl_psmbpo.recipes.config import (FREE, VARIANT_FIELDS, VARIANTS, comparable, flatten,
                                           help_text, leaf_fields)

COMPOSED = Path(__file__).parent / "data" / "composed_configs.json"


def test_defaults_are_paper_scale_and_presets_compose():
    paper = compose("dmc", [])
    assert (paper.posterior.num_models, paper.posterior.policies_per_model) == (5, 4)
    assert paper.policy.real_ratio == 0.05 and paper.policy.updates_per_step == 20
    assert paper.rollout.per_step == 400 and paper.model.hidden == 200 and paper.model.depth == 4
    assert paper.env.task == "dmc:cartpole-swingup" and paper.run.total_steps == 100_000
    small = compose("dmc", ["preset=small"])
    assert small.run.total_steps == 3_000 and small.policy.actor_hidden == [64, 64]
    cpu = compose("dmc", ["preset=cpu_dmc", "variant=mbpo"])
    assert cpu.env.action_repeat == 2 and cpu.model.members == 2 and cpu.run.threads == 1
    # 100K simulator steps and 250K updates of every member per run
    assert cpu.run.total_steps * cpu.env.action_repeat == 100_000
    assert cpu.run.total_steps * cpu.policy.updates_per_step == 250_000
    assert cpu.model.train_freq * cpu.env.action_repeat == 1000  # one fit per episode
    assert cpu.model.nll_beta == 0.5 and paper.model.nll_beta == 0.0  # protocol: beta-NLL
    assert compose("metaworld", ["preset=cpu_metaworld"]).model.nll_beta == 0.5
    assert compose("metaworld", []).env.task == "metaworld:window-open-v3"
    assert compose("gym", []).run.total_steps == 400_000


def test_overrides_after_the_preset_win():
    cfg = compose("dmc", ["preset=small", "policy.batch_size=32", "total_steps=10"])
    assert cfg.policy.batch_size == 32 and cfg.run.total_steps == 10


@pytest.mark.parametrize(
    "variant,expect",
    [
        ("sac", dict(num_models=1, policies_per_model=1, real_ratio=1.0, members=0)),
        ("mbpo", dict(num_models=1, policies_per_model=1, members=7, elites=5)),
        ("ps-mbpo", dict(num_models=5, policies_per_model=4, members=5)),
        ("ops-mbpo", dict(num_models=5, policies_per_model=4, members=5)),
        ("ps-mbpo-fixed", dict(num_models=5, policies_per_model=4)),
    ],
)
def test_variants_are_configurations_of_one_agent(variant, expect):
    cfg = compose("dmc", [f"variant={variant}"])
    where = {"num_models": cfg.posterior, "policies_per_model": cfg.posterior,
             "real_ratio": cfg.policy, "members": cfg.model, "elites": cfg.model}
    for key, value in expect.items():
        assert getattr(where[key], key) == value, key


def test_short_names_map_to_dotted_fields():
    assert expand_short_names(["total_steps=5", "task=gym:Hopper-v5", "+model.hidden=8",
                               "updates_per_step=4", "seed=1", "-m", "batch_size=4"]) == [
        "run.total_steps=5", "env.task=gym:Hopper-v5", "+model.hidden=8",
        "policy.updates_per_step=4", "seed=1", "-m", "batch_size=4"]  # batch_size: two groups
    cfg = compose("gym", ["task=gym:Hopper-v5", "seed=3", "real_ratio=0.5",
                          "rollout.schedule=[20,100,1,15]", "actor_hidden=[32,32]",
                          "predict_delta=false", "total_steps=10000"])
    assert cfg.env.task == "gym:Hopper-v5" and cfg.seed == 3 and cfg.policy.real_ratio == 0.5
    assert cfg.rollout.schedule == [20, 100, 1, 15] and cfg.policy.actor_hidden == [32, 32]
    assert cfg.model.predict_delta is False and cfg.run.total_steps == 10_000


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["task=dmc:cartpole-swingupp"], "Unknown DeepMind Control task: 'dmc:cartpole-swingupp'"),
        (["variant=dreamer"], "Unknown variant 'dreamer'"),
        (["variant=dreamer"], "accepted: mbpo, ops-mbpo, ps-mbpo, ps-mbpo-fixed, sac."),
        (["real_ratio=1.5"], "policy.real_ratio must lie in [0, 1], got 1.5"),
        (["real_ratio=-0.1"], "got -0.1"),
        (["variant=ops-mbpo", "ops_temperature=0"], "posterior.ops_temperature must lie in (0, inf)"),
        (["variant=ops-mbpo", "posterior.ops_mix=1.0"], "posterior.ops_mix must lie in [0, 1), got 1.0"),
        (["variant=ops-mbpo", "posterior.ops_statistic=max"], "Unknown posterior.ops_statistic 'max'"),
        (["num_models=0"], "posterior.num_models must be an integer >= 1, got 0"),
        (["policies_per_model=0"], "posterior.policies_per_model must be an integer >= 1, got 0"),
        (["variant=mbpo", "model.elites=9"], "model.elites (9) cannot exceed model.members (7)"),
        (["preset=huge"], "preset"),
        (["learning_rate=1"], "Unknown config field 'learning_rate'"),
        (["actor_lrr=1"], "Did you mean policy.actor_lr"),
        (["seed=abc"], "seed"),
        (["variant=ps-mbpo-fixed", "posterior.fixed_index=20"], "posterior.fixed_index must lie in [0, 20)"),
        (["rollout.schedule=[1,2,0,1]"], "rollout.schedule must be"),
        (["rollout.schedule=[100,20,1,1]"], "0 <= min_epoch <= max_epoch"),
        (["model.val_metric=mae"], "Unknown model.val_metric 'mae'. Accepted: ('mse', 'nll')"),
        (["gamma=1.5"], "policy.gamma must lie in (0, 1], got 1.5"),
        (["variant=mbpo", "model.nll_beta=2"], "model.nll_beta must lie in [0, 1], got 2.0"),
        (["tau=0"], "policy.tau must lie in (0, 1], got 0.0"),
        (["actor_lr=-1"], "policy.actor_lr must lie in (0, inf), got -1.0"),
        (["run.device=cuda:7"], "run.device='cuda:7'"),
        (["run.device=tpu"], "run.device"),
        (["init_random_steps=2"], "run.init_random_steps=2 is too few for ps-mbpo"),
        (["variant=sac", "real_ratio=0.5"], "policy.real_ratio=0.5 contradicts variant=sac"),
        (["variant=sac", "model.hidden=8"], "model.hidden=8 contradicts variant=sac"),
        (["variant=mbpo", "num_models=3"], "posterior.num_models=3 contradicts variant=mbpo"),
        (["variant=ps-mbpo", "ops_temperature=3"], "posterior.ops_temperature=3 contradicts variant=ps-mbpo"),
        (["variant=ps-mbpo", "model.members=7"], "model.members=7 must equal posterior.num_models=5"),
        (["variant=mbpo", "posterior.policies_per_model=3"],
         "posterior.policies_per_model=3 contradicts variant=mbpo, which sets "
         "posterior.policies_per_model=1 (recipes/conf/variant/mbpo.yaml)"),
        (["variant=sac", "model.members=2"], "model.members=2 contradicts variant=sac"),
        (["variant=ps-mbpo", "model.elites=3"], "model.elites=3 must equal model.members=5"),
        (["variant=ops-mbpo", "fixed_index=1"], "posterior.fixed_index=1 contradicts variant=ops-mbpo"),
        (["variant=ps-mbpo-fixed", "ops_mix=0.5"], "posterior.ops_mix=0.5 contradicts variant=ps-mbpo-fixed"),
        (["variant=ps-mbpo", "posterior.mode=ops"], "posterior.mode=ops contradicts variant=ps-mbpo"),
        (["variant=mbpo", "rollout.member_mode=per_model"], "contradicts variant=mbpo"),
        (["variant=sac", "rollout.member_mode=random"], "sac has no model (model.members=0)"),
        (["run.threads=0"], "run.threads must be an integer >= 1, got 0"),
        (["env.action_repeat=0"], "env.action_repeat must be an integer >= 1, got 0"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_value(overrides, fragment):
    with pytest.raises(UserError) as err:
        compose("dmc", overrides)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_sac_may_restate_lambda_one_and_mbpo_may_size_its_ensemble():
    assert compose("dmc", ["variant=sac", "real_ratio=1"]).policy.real_ratio == 1.0
    assert compose("dmc", ["variant=mbpo", "model.members=4", "model.elites=3"]).model.members == 4
    assert compose("dmc", ["variant=mbpo", "num_models=1"]).shape == (1, 1)  # the variant's value


LATER_FIELDS = {"policy.cudagraphs": False}
"""Fields added after 51f5a44, with the default that reproduces its runs."""


def test_every_variant_and_preset_composes_as_at_51f5a44():
    """The variant files compose every variant x preset as the variant tables of 51f5a44 did
    (tests/data/make_composed_configs.py), with the same checkpoint fields (comparable), and a
    config.yaml saved then (without posterior.mode) loads as the variant's."""
    modes = {"sac": "fixed", "mbpo": "fixed", "ps-mbpo": "ps", "ops-mbpo": "ops",
             "ps-mbpo-fixed": "fixed"}  # 51f5a44's SAMPLING_MODE
    composed = json.loads(COMPOSED.read_text())
    assert len(composed) == 30 and set(VARIANTS) == set(modes)
    for name, before in composed.items():
        suite, preset, variant = name.split(" ")
        cfg = compose(suite, [preset, variant])
        now = flatten(dataclasses.asdict(cfg))
        added = {k: now.pop(k) for k in VARIANT_FIELDS}
        later = {k: now.pop(k) for k in LATER_FIELDS}  # fields added since, at their defaults
        assert later == LATER_FIELDS, name
        assert now == flatten(before), name
        assert comparable(cfg) == {k: v for k, v in now.items() if k not in FREE} | later, name
        v = variant.split("=")[1]
        assert added == {"posterior.mode": modes[v],
                         "rollout.member_mode": "random" if v == "mbpo" else "per_model"}, name
        assert to_config(before) == cfg, name  # its config.yaml, as saved by 51f5a44


def test_help_lists_every_field_with_its_source():
    text = help_text()
    for name in leaf_fields():
        assert f"  {name}=" in text
    assert "MBPO: 400" in text and "MBPO) | nll" in text


def test_a_variant_file_wins_over_the_preset_and_follows_n():
    cfg = compose("dmc", ["preset=cpu_dmc", "variant=ps-mbpo", "num_models=3"])
    assert cfg.shape == (3, 2) and cfg.model.members == cfg.model.elites == 3
    assert compose("dmc", ["preset=cpu_dmc", "variant=sac"]).model.members == 0


def test_model_val_metric_reaches_the_trainer():
    from torchrl_psmbpo.recipes.build import make_world_model

    cfg = compose("gym", ["preset=small", "variant=mbpo", "task=gym:Pendulum-v1",
                          "model.val_metric=nll"])
    assert make_world_model(cfg, 3, 1).trainer.val_metric == "nll"


def test_model_nll_beta_reaches_the_trainer():
    from torchrl_psmbpo.recipes.build import make_world_model

    cfg = compose("gym", ["preset=small", "variant=mbpo", "task=gym:Pendulum-v1",
                          "model.nll_beta=0.5"])
    assert make_world_model(cfg, 3, 1).trainer.nll_beta == 0.5
    assert compose("gym", ["preset=small", "variant=mbpo"]).model.nll_beta == 0.0  # MBPO's


def test_rollout_and_information_settings_reach_the_imagined_env():
    from torchrl_psmbpo.recipes.build import make_world_model

    cfg = compose("gym", ["preset=small", "task=gym:Pendulum-v1", "rollout.deterministic=true",
                          "rollout.information_weight=0.5", "rollout.information_sign=optimistic"])
    env = make_world_model(cfg, 3, 1).imagined_env
    assert env.deterministic is True
    assert env.information_weight == 0.5 and env.information_sign == "optimistic"


@pytest.mark.parametrize("flag, attribute", [("compile", "compiled"), ("cudagraphs", "cudagraphs")])
def test_policy_update_flags_reach_the_ensemble_and_are_ignored_on_a_cpu(flag, attribute):
    from torchrl_psmbpo.recipes.build import make_policies

    assert getattr(compose("dmc", ["preset=small"]).policy, flag) is False
    cfg = compose("dmc", ["preset=small", f"policy.{flag}=true"])
    policies = make_policies(cfg, 5, 1)
    assert getattr(cfg.policy, flag) is True
    assert getattr(policies, attribute) is False  # run.device=cpu
    with pytest.raises(UserError, match=f"policy.{flag}"):
        compose("dmc", [f"policy.{flag}=maybe"])


def test_action_prior_widths_default_to_half_the_actors_and_are_checked():
    from torchrl_psmbpo.recipes.build import make_policies

    cfg = compose("dmc", ["preset=cpu_dmc", "policy.action_prior=true"])
    assert cfg.policy.prior_hidden is None
    policies = make_policies(cfg, 5, 1)
    assert policies.prior_hidden == (64, 64) and policies.actor_hidden == (128, 128)
    cfg = compose("dmc", ["preset=cpu_dmc", "policy.action_prior=true", "policy.prior_hidden=[32,8]"])
    assert make_policies(cfg, 5, 1).prior_hidden == (32, 8)
    for bad in ("[0]", "[]"):
        with pytest.raises(UserError, match=r"policy\.prior_hidden must be a non-empty list of "
                                             r"sizes >= 1, got \["):
            compose("dmc", [f"policy.prior_hidden={bad}"])
