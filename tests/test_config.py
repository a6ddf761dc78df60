"""The training config: presets, variants, key=value overrides, bad input."""

from __future__ import annotations

import pytest

from config import Config, help_text, make_config, parse_overrides


def test_defaults_are_paper_scale_and_small_preset_is_small():
    paper = make_config()
    assert (paper.num_models, paper.policies_per_model) == (5, 4)
    assert paper.real_ratio == 0.05 and paper.updates_per_step == 20
    assert paper.rollouts_per_step == 400 and paper.model_hidden == 200 and paper.model_depth == 4
    small = make_config({"preset": "small"})
    assert small.total_steps == 3_000 and small.actor_hidden == (64, 64)


@pytest.mark.parametrize(
    "variant,expect",
    [
        ("sac", dict(num_models=1, policies_per_model=1, real_ratio=1.0)),
        ("mbpo", dict(num_models=1, policies_per_model=1, model_members=7, num_elites=5)),
        ("ps-mbpo", dict(num_models=5, policies_per_model=4, model_members=5)),
        ("ops-mbpo", dict(num_models=5, policies_per_model=4, model_members=5)),
        ("ps-mbpo-fixed", dict(num_models=5, policies_per_model=4)),
    ],
)
def test_variants_are_configurations_of_one_agent(variant, expect):
    cfg = make_config({"variant": variant})
    for key, value in expect.items():
        assert getattr(cfg, key) == value, key


def test_overrides_are_typed():
    cfg = make_config(
        parse_overrides(
            ["task=gym:Hopper-v5", "--seed=3", "real_ratio=0.5", "rollout_schedule=20,100,1,15",
             "actor_hidden=[32,32]", "predict_delta=false", "--total-steps", "1e4"]
        )
    )
    assert cfg.task == "gym:Hopper-v5" and cfg.seed == 3 and cfg.real_ratio == 0.5
    assert cfg.rollout_schedule == (20, 100, 1, 15) and cfg.actor_hidden == (32, 32)
    assert cfg.predict_delta is False and cfg.total_steps == 10_000


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        ({"task": "dmc:cartpole-swingupp"}, "Unknown DeepMind Control task: 'dmc:cartpole-swingupp'"),
        ({"variant": "dreamer"}, "Unknown variant 'dreamer'"),
        ({"real_ratio": "1.5"}, "real_ratio (lambda) must lie in [0, 1], got 1.5"),
        ({"real_ratio": "-0.1"}, "got -0.1"),
        ({"ops_temperature": "0"}, "ops_temperature (tau) must be > 0, got 0.0"),
        ({"num_models": "0"}, "num_models must be >= 1, got 0"),
        ({"policies_per_model": "0"}, "policies_per_model must be >= 1, got 0"),
        ({"num_elites": "9", "variant": "mbpo"}, "num_elites (9) cannot exceed the ensemble size (7)"),
        ({"preset": "huge"}, "Unknown preset 'huge'"),
        ({"learning_rate": "1"}, "Unknown config field 'learning_rate'"),
        ({"seed": "abc"}, "Cannot read seed='abc'"),
        ({"variant": "ps-mbpo-fixed", "fixed_policy_index": "20"}, "fixed_policy_index must lie in [0, 20)"),
        ({"rollout_schedule": "1,2,0,1"}, "rollout_schedule must be"),
        ({"model_val_metric": "mae"}, "Unknown model_val_metric 'mae'. Accepted: ('mse', 'nll')"),
    ],
)
def test_bad_values_fail_before_training_with_named_value(overrides, fragment):
    with pytest.raises(ValueError) as err:
        make_config(overrides)
    assert fragment in str(err.value)


def test_help_lists_every_field_with_its_source():
    text = help_text()
    for name in Config.__dataclass_fields__:
        assert f"  {name}=" in text
    assert "MBPO: 400" in text and "MBPO: 0.05" in text


def test_missing_value_is_reported():
    with pytest.raises(ValueError, match="Missing value for '--seed'"):
        parse_overrides(["--seed"])


def test_model_val_metric_reaches_the_trainer():
    from agent import build_agent

    cfg = make_config({"preset": "small", "variant": "mbpo", "task": "gym:Pendulum-v1",
                       "model_val_metric": "nll", "real_buffer_size": "1000", "progress": "false"})
    assert build_agent(cfg).model_trainer.val_metric == "nll"
