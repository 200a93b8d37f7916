"""The `optim` group: its `_target_` is instantiated with every key (no switch on names), and the
learning-rate schedule acts as documented."""

import pytest
import torch

from mtl_cli.config import compose
from mtl_cli.optim import build_optimizer, build_scheduler, lr_factor
from mtl_cli.registry import schema_choices


@pytest.mark.parametrize("choice", schema_choices("optim"), ids=lambda c: c.name)
def test_every_optimizer_choice_builds_its_target_with_its_options(choice):
    cfg = compose(
        [f"optim={choice.name}", "optim.lr=0.123", "optim.weight_decay=0.01", "paths.output_dir=."]
    )
    w = torch.nn.Parameter(torch.ones(3))
    optimizer = build_optimizer(cfg.optim, [w])
    assert f"{type(optimizer).__module__}.{type(optimizer).__name__}".endswith(
        cfg.optim._target_.rsplit(".", 1)[-1]
    )
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.123 and group["weight_decay"] == 0.01


def test_decoupled_weight_decay_is_adamw():
    def steps(optimizer, w):
        for _ in range(3):
            optimizer.zero_grad()
            (w**2).sum().backward()
            optimizer.step()
        return w.detach().clone()

    cfg = compose(
        [
            "optim=adam",
            "optim.decoupled_weight_decay=true",
            "optim.weight_decay=0.1",
            "paths.output_dir=.",
        ]
    )
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    ours = steps(build_optimizer(cfg.optim, [w]), w)
    v = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    reference = steps(torch.optim.AdamW([v], lr=1e-3, weight_decay=0.1), v)
    torch.testing.assert_close(ours, reference)
    cfg = compose(
        ["optim=adam", "optim.weight_decay=0.1", "paths.output_dir=."]
    )  # coupled: differs
    u = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    assert not torch.equal(steps(build_optimizer(cfg.optim, [u]), u), reference)


def test_frozen_parameters_are_left_out():
    cfg = compose(["paths.output_dir=."])
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    optimizer = build_optimizer(cfg.optim, [frozen, torch.nn.Parameter(torch.ones(1))])
    assert [p.numel() for p in optimizer.param_groups[0]["params"]] == [1]


def test_warmup_then_cosine_and_step_schedules():
    assert lr_factor(0, 100, "none", 4, 10, 0.5) == pytest.approx(0.25)
    assert lr_factor(3, 100, "none", 4, 10, 0.5) == 1.0
    assert lr_factor(4, 104, "cosine", 4, 10, 0.5) == pytest.approx(1.0)
    assert lr_factor(54, 104, "cosine", 4, 10, 0.5) == pytest.approx(0.5)
    assert lr_factor(25, 100, "step", 0, 10, 0.5) == pytest.approx(0.25)
    cfg = compose(
        ["optim.scheduler=step", "optim.step_size=2", "optim.gamma=0.1", "paths.output_dir=."]
    )
    w = torch.nn.Parameter(torch.ones(1))
    optimizer = build_optimizer(cfg.optim, [w])
    scheduler = build_scheduler(cfg.optim, optimizer, total_steps=10)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5])
