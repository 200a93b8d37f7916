"""The task-gradient matrix G is computed once per step: the conflict diagnostics reuse the one a
gradient method computed, and the RNG states of a checkpoint restore wherever it was loaded."""

from __future__ import annotations

import pytest
import torch

import mtl_cli.loss.task_gradients as task_gradients_module
from mtl_cli.config import compose
from mtl_cli.io import read_jsonl
from mtl_cli.loss.diagnostics import gradient_conflict_stats
from mtl_cli.run import train
from tests.conftest import tiny


@pytest.fixture
def backward_passes(monkeypatch):
    """Counts the backward passes that build G (the loop strategy: one per task)."""
    calls = []
    original = task_gradients_module._loop

    def counting(losses, *args, **kwargs):
        calls.append(losses.shape[0])
        return original(losses, *args, **kwargs)

    monkeypatch.setattr(task_gradients_module, "_loop", counting)
    return calls


@pytest.mark.parametrize(
    ("loss", "per_step", "extra_at_evaluation"),
    [
        ("pcgrad", 1, 0),  # G every step; the diagnostics reuse it
        ("mgda", 1, 0),
        ("equal", 0, 1),  # no G of its own: computed once, only at evaluation steps
        ("mgda_rep", 1, 1),  # G of z for the method, G of the shared parameters for diagnostics
    ],
)
def test_g_is_built_once_per_step(tmp_path, backward_passes, loss, per_step, extra_at_evaluation):
    overrides = [f"loss={loss}"]
    if loss == "mgda_rep":
        overrides = [
            "loss=mgda",
            "loss.rep_grad=true",
            "task=multilabel/synthetic",
            "task.train_size=64",
            "task.val_size=32",
            "task.test_size=32",
        ]
    args = tiny(tmp_path / "run", *overrides)
    if loss == "mgda_rep":
        args = [a for a in args if not a.startswith("task.alphabets")]
    summary = train(compose(args))
    steps = summary["step"]  # trainer=debug: 6 steps, evaluation at 3 and 6
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 2 and all("diag/grad_cos/mean" in r for r in rows)
    assert len(backward_passes) == steps * per_step + len(rows) * extra_at_evaluation


def test_diagnostics_equal_the_statistics_of_the_methods_own_g(tmp_path, monkeypatch):
    """The logged conflict statistics are those of the G that PCGrad combined at that step."""
    from mtl_cli.loss.pcgrad import PCGrad

    seen = []
    original = PCGrad._aggregate

    def spy(self, G, losses, index=None):
        seen.append((G.detach().clone(), index.tolist()))
        return original(self, G, losses, index)

    monkeypatch.setattr(PCGrad, "_aggregate", spy)
    train(compose(tiny(tmp_path / "run", "loss=pcgrad")))
    row = read_jsonl(tmp_path / "run" / "metrics.jsonl")[0]  # step 3
    G, tasks = seen[row["step"] - 1]
    expected = gradient_conflict_stats(G, tasks)
    assert row["diag/grad_cos/mean"] == pytest.approx(expected["grad_cos/mean"], rel=1e-6)
    assert row["diag/grad_norm_ratio"] == pytest.approx(expected["grad_norm_ratio"], rel=1e-6)


class OnAnotherDevice:
    """Stand-in for a tensor that `torch.load(map_location=<cuda device>)` put on a GPU:
    torch.Generator.set_state refuses it ("RNG state must be a torch.ByteTensor") until `.cpu()`."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def cpu(self) -> torch.Tensor:
        return self.tensor.clone()


def test_rng_states_restore_from_a_non_cpu_location():
    from mtl_cli.run import restore_rng

    generator = torch.Generator().manual_seed(1)
    saved = {"generator": generator.get_state(), "torch": torch.get_rng_state(), "cuda": []}
    expected = torch.rand(3, generator=generator), torch.rand(3)
    moved = {"generator": OnAnotherDevice(saved["generator"]), "torch": saved["torch"], "cuda": []}
    moved["torch"] = OnAnotherDevice(saved["torch"])
    restore_rng(generator, moved)
    torch.testing.assert_close((torch.rand(3, generator=generator), torch.rand(3)), expected)


@pytest.mark.parametrize("name", ["pcgrad", "rlw"])
def test_method_generators_restore_from_a_non_cpu_location(name):
    from hydra.utils import instantiate

    from mtl_cli.loss.base import TaskSetup

    def build():
        cfg = compose([f"loss={name}", "loss.seed=3", "paths.output_dir=."])
        return instantiate(cfg.loss).setup(TaskSetup.count(3))

    method = build()
    state = method.state_dict()
    key = next(k for k in state if k.endswith("_extra_state"))
    draws = torch.rand(4, generator=method.generator)
    state[key] = {"generator": OnAnotherDevice(state[key]["generator"])}
    fresh = build()
    fresh.load_state_dict(state)
    torch.testing.assert_close(torch.rand(4, generator=fresh.generator), draws)
