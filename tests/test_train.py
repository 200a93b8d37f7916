"""End-to-end `train(cfg)` on embedded data: outputs, reproducibility, resume, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.families.sampling import EpochSampler, TaskSampler
from mtl_cli.io import read_jsonl
from mtl_cli.run import evaluate, train
from tests.conftest import tiny

TIMING = {"steps_per_s", "wall_time_s", "resumed_from"}


def without_timing(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING}


def jsonl_without_time(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(path)]


def test_train_writes_the_run_files(tmp_path):
    summary = train(compose(tiny(tmp_path / "run")))
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / "checkpoints" / "best.pt").is_file()
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["status"] == "finished" and on_disk["step"] == 6
    tasks = on_disk["tasks"]
    assert tasks == ["digits", "greek_sans_upper", "markers"]
    for split in ("val", "test", "best_test", "best_val"):
        assert 0.0 <= on_disk[split]["accuracy"] <= 1.0
        for t in tasks:
            assert f"{t}/accuracy" in on_disk[split]
    mean = sum(on_disk["test"][f"{t}/accuracy"] for t in tasks) / len(tasks)
    assert on_disk["test"]["accuracy"] == pytest.approx(mean)
    assert on_disk["num_params"] > 0 and on_disk["device"] == "cpu"
    assert {"torch", "numpy", "hydra", "mtl_cli", "python"} <= set(on_disk["versions"])
    lines = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in lines] == [3, 6]
    assert all("val/accuracy" in r and "train/loss" in r for r in lines)
    assert all("diag/cos_mean" in r or any(k.startswith("diag/") for k in r) for r in lines)
    assert summary["test"] == on_disk["test"]


def test_same_seed_same_metrics_different_seed_different(tmp_path):
    a = train(compose(tiny(tmp_path / "a", "seed=3")))
    b = train(compose(tiny(tmp_path / "b", "seed=3")))
    c = train(compose(tiny(tmp_path / "c", "seed=4")))
    assert without_timing(a) == without_timing(b)
    assert jsonl_without_time(tmp_path / "a/metrics.jsonl") == jsonl_without_time(
        tmp_path / "b/metrics.jsonl"
    )
    assert a["test"] != c["test"]


def test_continuing_a_stopped_run_matches_an_uninterrupted_one(tmp_path):
    full = train(compose(tiny(tmp_path / "full", "trainer.steps=9", "trainer.eval_every=3")))
    train(compose(tiny(tmp_path / "part", "trainer.steps=3", "trainer.eval_every=3")))
    resumed = train(compose(tiny(tmp_path / "part", "trainer.steps=9", "trainer.eval_every=3")))
    assert resumed["resumed_from"] == 3
    assert without_timing(resumed) == without_timing(full)
    assert jsonl_without_time(tmp_path / "part/metrics.jsonl") == jsonl_without_time(
        tmp_path / "full/metrics.jsonl"
    )


def test_resume_refuses_a_different_model_config(tmp_path):
    train(compose(tiny(tmp_path / "run")))
    with pytest.raises(UserError, match="different config"):
        train(compose(tiny(tmp_path / "run", "backbone.hidden=[32]")))
    with pytest.raises(UserError, match="trainer.resume=false"):
        train(compose(tiny(tmp_path / "run", "trainer.resume=false")))


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    train(compose(tiny(tmp_path / "run")))
    (tmp_path / "run/checkpoints/last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt or unreadable checkpoint"):
        train(compose(tiny(tmp_path / "run")))


def test_eval_rebuilds_the_model_and_matches_best_test(tmp_path):
    summary = train(compose(tiny(tmp_path / "run")))
    # evaluate() reads the run's saved config, as written by Hydra
    (tmp_path / "run/.hydra").mkdir()
    from omegaconf import OmegaConf

    OmegaConf.save(compose(tiny(tmp_path / "run")), tmp_path / "run/.hydra/config.yaml")
    result = evaluate(tmp_path / "run", split="test", checkpoint="best", device="cpu")
    assert result["metrics"] == pytest.approx(summary["best_test"])
    written = json.loads((tmp_path / "run/eval_metrics.json").read_text())
    assert written["metrics"] == pytest.approx(summary["best_test"])


@pytest.mark.parametrize("mode", ["uniform", "proportional"])
def test_task_sampling_trains_k_tasks_per_step(tmp_path, mode):
    cfg = compose(
        tiny(tmp_path / mode, f"trainer.task_sampling={mode}", "trainer.tasks_per_step=1")
    )
    train(cfg)
    first = read_jsonl(tmp_path / mode / "metrics.jsonl")[0]
    seen = [k for k in first if k.startswith("train/") and k.endswith("/loss")]
    assert 1 <= len(seen) <= 3  # 3 steps of one task each


def test_task_sampler_modes():
    g = torch.Generator().manual_seed(0)
    assert TaskSampler("all", 1, [5, 5, 5]).sample(g) == [0, 1, 2]
    uniform = TaskSampler("uniform", 2, [5, 5, 5])
    draws = [tuple(uniform.sample(g)) for _ in range(300)]
    assert all(len(set(d)) == 2 for d in draws)
    proportional = TaskSampler("proportional", 1, [900, 90, 10])
    counts = torch.bincount(
        torch.tensor([proportional.sample(g)[0] for _ in range(2000)]), minlength=3
    )
    assert counts[0] > 1600 and counts[2] < 60  # expected 1800 / 180 / 20
    with pytest.raises(UserError, match="tasks_per_step"):
        TaskSampler("uniform", 4, [1, 2, 3])


def test_epoch_sampler_visits_every_item_once_per_epoch():
    g = torch.Generator().manual_seed(1)
    sampler = EpochSampler(10, 5)
    first_epoch = torch.cat([sampler.next(g), sampler.next(g)])
    assert sorted(first_epoch.tolist()) == list(range(10))
    state = sampler.state_dict()
    g_state = g.get_state()
    a = sampler.next(g)
    sampler.load_state_dict(state)
    g.set_state(g_state)
    assert torch.equal(a, sampler.next(g))


def test_sigusr2_saves_a_checkpoint_then_hands_over_to_the_previous_handler(tmp_path, monkeypatch):
    """SLURM/submitit send SIGUSR2 before preemption: save now, then let submitit requeue."""
    import os
    import signal

    from mtl_cli.checkpoint import load_checkpoint
    from mtl_cli.families.multitask import MultiTaskFamily
    from mtl_cli.run import Interrupted

    calls = []
    original = MultiTaskFamily.train_losses

    def train_losses(self, model, generator):
        calls.append(1)
        if len(calls) == 5:  # during step 5, between the evaluations at steps 3 and 6
            os.kill(os.getpid(), signal.SIGUSR2)
        return original(self, model, generator)

    def requeue(signum, frame):  # stands in for submitit's checkpoint_and_try_requeue
        pass

    monkeypatch.setattr(MultiTaskFamily, "train_losses", train_losses)
    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        with pytest.raises(Interrupted) as info:
            train(compose(tiny(tmp_path / "run", "trainer.steps=9", "trainer.eval_every=3")))
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert info.value.signum == signal.SIGUSR2 and info.value.chained is requeue
    assert load_checkpoint(tmp_path / "run/checkpoints/last.pt")["step"] == 5
    monkeypatch.setattr(MultiTaskFamily, "train_losses", original)
    resumed = train(compose(tiny(tmp_path / "run", "trainer.steps=9", "trainer.eval_every=3")))
    full = train(compose(tiny(tmp_path / "full", "trainer.steps=9", "trainer.eval_every=3")))
    assert without_timing(resumed) == without_timing(full)


def test_wall_time_of_a_resumed_run_includes_its_earlier_segments(tmp_path):
    from mtl_cli.checkpoint import load_checkpoint

    part = tiny(tmp_path / "run", "trainer.steps=3", "trainer.eval_every=3")
    first = train(compose(part))
    saved = float(load_checkpoint(tmp_path / "run/checkpoints/last.pt")["wall_time_s"])
    assert 0 < saved <= first["wall_time_s"]
    resumed = train(compose(tiny(tmp_path / "run", "trainer.steps=6", "trainer.eval_every=3")))
    assert resumed["resumed_from"] == 3
    assert resumed["wall_time_s"] > saved  # this segment's time on top of the first one's
