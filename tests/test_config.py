"""Composition, typed schemas and value checks (no training)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from mtl_cli.config import compose, config_groups, group_choices, validate
from mtl_cli.errors import UserError


def test_default_config_composes_with_typed_groups():
    cfg = compose(["paths.output_dir=."])
    validate(cfg)
    assert cfg.task.family == "multitask"
    assert OmegaConf.get_type(cfg.trainer).__name__ == "Trainer"
    assert OmegaConf.get_type(cfg.optim).__name__ == "Adam"
    assert cfg.seed == 0 and cfg.device == "auto"


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("optim.lr=-1", "optim.lr"),
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=abc", "optim.lr"),
        ("trainer.steps=0", "trainer.steps"),
        ("trainer.batch_size=1.5", "trainer.batch_size"),
        ("trainer.task_sampling=sometimes", "trainer.task_sampling"),
        ("loss=nope", "loss: unknown choice 'nope'"),
        ("task=multitask/nope", "task: unknown choice 'multitask/nope'"),
        ("optim.momentum=0.9", "optim.momentum"),
        ("device=gpu", "device"),
        ("seed=-3", "seed"),
        ("task.render.size=4", "task.render.size"),
        ("task.family=meta", "task.family"),
    ],
)
def test_bad_values_fail_before_any_work_naming_the_key(override, fragment):
    with pytest.raises(UserError) as info:
        validate(compose(["paths.output_dir=.", override]))
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_every_choice_of_every_group_composes():
    for group in config_groups():
        if group.startswith("hydra/") or group in ("experiment", "hparams_search"):
            continue  # global presets: their own tests run each one
        for choice in group_choices(group):
            cfg = compose(["paths.output_dir=.", f"{group}={choice}"])
            assert cfg[group] is not None, (group, choice)


def test_unknown_choice_lists_allowed_choices():
    with pytest.raises(UserError, match="allowed: .*adam.*sgd"):
        compose(["optim=rmsprop"])


@pytest.mark.parametrize(
    "task, refused",
    [
        ("multitask/hershey_alphabets", True),
        ("multilabel/celeba", True),
        ("multitask/table", True),
        ("dense/scenes", True),
        ("meta/omniglot_5w1s", False),
        ("meta/cifar_fs", False),
        ("multitask/multifashion", False),
    ],
)
def test_data_download_acts_only_where_a_task_downloads(task, refused):
    overrides = [f"task={task}", "data.download=true"]
    if task.startswith("meta/"):
        overrides += ["model=meta/protonet", "backbone=conv4"]
    cfg = compose(overrides)
    if refused:
        with pytest.raises(UserError, match=rf"^data.download: true, but task '{task}'"):
            validate(cfg)
    else:
        validate(cfg)  # the download itself happens when the data is built
