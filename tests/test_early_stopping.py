"""trainer.patience / trainer.min_delta: stopping on a validation plateau, through the real loop."""

from __future__ import annotations

import pytest

from mtl_cli.config import compose, validate
from mtl_cli.early_stopping import NO_PLATEAU, next_plateau, plateau_reached
from mtl_cli.errors import UserError
from mtl_cli.io import read_jsonl
from mtl_cli.run import Run, train
from mtl_cli.sweep_resume import finished_summary
from tests.conftest import tiny
from tests.test_train import jsonl_without_time, without_timing


def counts(values, higher, min_delta):
    plateau, seen = dict(NO_PLATEAU), []
    for v in values:
        plateau = next_plateau(plateau, v, higher, min_delta)
        seen.append(plateau["since"])
    return seen


def test_the_rule_for_a_loss_and_for_nan():
    # lower is better, min_delta 0.1: 1.0 ref; 0.95 (-0.05, 1); 0.85 (-0.15: ref 0.85, 0); nan (1);
    # 0.8 (-0.05, 2); 0.7 (-0.15, 0)
    assert counts([1.0, 0.95, 0.85, float("nan"), 0.8, 0.7], False, 0.1) == [0, 1, 0, 1, 2, 0]
    assert counts([float("nan"), 0.5], True, 0.0) == [1, 0]  # no reference until a finite value
    assert plateau_reached({"value": 1.0, "since": 2}, 2)
    assert not plateau_reached({"value": 1.0, "since": 1}, 2)
    assert not plateau_reached({"value": 1.0, "since": 99}, 0)  # patience 0: off


def scripted_val(monkeypatch, values: list[float]) -> None:
    """Make each val evaluation return the next value as the selected metric (accuracy)."""
    real = Run.evaluate
    left = list(values)

    def evaluate(self, split):
        metrics = real(self, split)
        if split == "val" and left:
            metrics = {**metrics, "accuracy": left.pop(0)}
        return metrics

    monkeypatch.setattr(Run, "evaluate", evaluate)


def test_stops_after_patience_evaluations_without_an_improvement_above_min_delta(
    tmp_path, monkeypatch
):
    # by hand, min_delta 0.01, patience 2: 0.50 best; 0.60 best (+0.10); 0.60 +0.00 (1);
    # 0.605 +0.005 <= 0.01 (2) -> stop at the 4th evaluation, step 4 * 2 = 8 of 20
    scripted_val(monkeypatch, [0.50, 0.60, 0.60, 0.605, 0.9, 0.9])
    over = (
        "trainer.steps=20",
        "trainer.eval_every=2",
        "trainer.patience=2",
        "trainer.min_delta=0.01",
    )
    summary = train(compose(tiny(tmp_path / "run", *over)))
    assert summary["step"] == 8 and summary["stopped"] == "plateau"
    assert [r["step"] for r in read_jsonl(tmp_path / "run/metrics.jsonl")] == [2, 4, 6, 8]
    assert summary["best_step"] == 8  # best.pt keeps the strict best (0.605), as without patience


def test_an_improvement_resets_the_count(tmp_path, monkeypatch):
    # patience 2, min_delta 0: 0.5; 0.4 (1); 0.6 best (0); 0.6 (1); 0.55 (2) -> stop at step 5
    scripted_val(monkeypatch, [0.5, 0.4, 0.6, 0.6, 0.55, 0.9])
    over = ("trainer.steps=20", "trainer.eval_every=1", "trainer.patience=2")
    summary = train(compose(tiny(tmp_path / "run", *over)))
    assert summary["step"] == 5 and summary["stopped"] == "plateau"


def test_without_patience_every_step_runs(tmp_path, monkeypatch):
    scripted_val(monkeypatch, [0.5] * 10)
    summary = train(compose(tiny(tmp_path / "run", "trainer.steps=6", "trainer.eval_every=2")))
    assert summary["step"] == 6 and summary["stopped"] == "steps"


def test_a_plateaued_run_resumes_as_done_and_continues_exactly_without_patience(tmp_path):
    # min_delta 1.0: accuracy never improves by more than 1, so patience 1 stops at the 2nd eval
    common = ("trainer.steps=9", "trainer.eval_every=3")
    stopped = tiny(tmp_path / "part", *common, "trainer.patience=1", "trainer.min_delta=1.0")
    first = train(compose(stopped))
    assert first["step"] == 6 and first["stopped"] == "plateau"
    assert finished_summary(compose(stopped)) is not None  # a sweep skips it as done
    assert finished_summary(compose(tiny(tmp_path / "part", *common, "trainer.patience=2"))) is None
    again = train(compose(stopped))  # resuming with the same patience adds no step
    assert again["step"] == 6 and again["resumed_from"] == 6
    assert len(read_jsonl(tmp_path / "part/metrics.jsonl")) == 2
    # patience is a run-control key: the same run continues to all its steps, exactly as a run
    # that never had it
    full = train(compose(tiny(tmp_path / "full", *common)))
    resumed = train(compose(tiny(tmp_path / "part", *common)))
    assert resumed["step"] == 9 and resumed["stopped"] == "steps"
    assert without_timing(resumed) == without_timing(full)
    assert jsonl_without_time(tmp_path / "part/metrics.jsonl") == jsonl_without_time(
        tmp_path / "full/metrics.jsonl"
    )


@pytest.mark.parametrize(
    "override, allowed",
    [("trainer.patience=-1", "minimum 0"), ("trainer.min_delta=-0.1", "minimum 0")],
)
def test_bad_values_are_one_line_errors(tmp_path, override, allowed):
    with pytest.raises(UserError) as err:
        validate(compose(tiny(tmp_path / "run", override)))
    message = str(err.value)
    assert "\n" not in message and override.split("=")[0] in message and allowed in message
