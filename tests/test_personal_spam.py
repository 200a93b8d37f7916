"""task=multitask/personal_spam: the generator's known properties, the builder, tiny real runs and
the experiment=personal_spam preset."""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest
import torch

from mtl_cli.config import compose
from mtl_cli.data.personal_spam import make_personal_spam, make_world, train_sizes
from mtl_cli.errors import UserError
from mtl_cli.run import train
from mtl_cli.tasks.multitask.personal_spam import personal_spam_tasks
from tests.conftest import mtl

SMALL = {"users": 4, "vocab_size": 60, "topics": 6, "mails_per_user": (5, 40)}


def tiny_spam(out, *overrides: str) -> list[str]:
    """A run of a few steps on a small corpus (4 users, 60 words)."""
    return [
        "task=multitask/personal_spam", f"paths.output_dir={out}", "trainer=debug",
        "device=cpu", "trainer.threads=1", "trainer.diagnostics=false", "task.users=4",
        "task.vocab_size=60", "task.topics=6", "task.mails_per_user=[5,40]",
        "task.val_per_user=20", "task.test_per_user=30", "backbone=mlp", "backbone.hidden=[16]",
        *overrides,
    ]  # fmt: skip


def mean_pairwise_tv(word_dist: np.ndarray) -> float:
    """Mean total-variation distance between the users' word distributions."""
    return float(np.mean([0.5 * np.abs(p - q).sum() for p, q in combinations(word_dist, 2)]))


# ------------------------------------------------------------------ generator


def test_same_seed_same_corpus_other_seed_other_corpus():
    a, b, c = (make_personal_spam(**SMALL, seed=s) for s in (3, 3, 4))
    for split in ("train", "val", "test"):
        for ma, mb in zip(a["splits"][split], b["splits"][split], strict=True):
            assert np.array_equal(ma["x"], mb["x"]) and np.array_equal(ma["y"], mb["y"])
    assert not np.array_equal(a["splits"]["test"][0]["x"], c["splits"]["test"][0]["x"])


def test_features_are_log1p_counts_of_mails_of_at_least_one_word():
    corpus = make_personal_spam(**SMALL, mail_length=7.0, seed=0)
    x = np.concatenate([m["x"] for m in corpus["splits"]["train"]])
    counts = np.expm1(x.astype(np.float64))
    assert x.dtype == np.float32 and x.shape[1] == 60
    assert np.allclose(counts, np.round(counts), atol=1e-4)  # integer counts
    lengths = np.round(counts).sum(axis=1)
    assert lengths.min() >= 1 and abs(lengths.mean() - 7.0) < 1.0  # L = 1 + Poisson(6)


def test_train_sizes_are_geometric_from_min_to_max_times_data_scale():
    assert train_sizes(5, (10, 160), 1.0).tolist() == [10, 20, 40, 80, 160]
    assert train_sizes(5, (10, 160), 0.5).tolist() == [5, 10, 20, 40, 80]
    assert train_sizes(3, (1, 4), 0.1).tolist() == [1, 1, 1]  # at least one mail
    corpus = make_personal_spam(**{**SMALL, "mails_per_user": (8, 200)}, data_scale=2.0)
    sizes = [len(m["y"]) for m in corpus["splits"]["train"]]
    assert sizes[0] == 16 and sizes[-1] == 400 and sizes == sorted(sizes)
    assert all(len(m["y"]) == 500 for m in corpus["splits"]["test"])


def test_test_mails_do_not_change_with_the_amount_of_training_data():
    small, large = (make_personal_spam(**SMALL, data_scale=s, seed=1) for s in (0.5, 4.0))
    for a, b in zip(small["splits"]["test"], large["splits"]["test"], strict=True):
        assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["y"], b["y"])


def test_user_word_distributions_differ_more_as_user_shift_grows():
    tv = {s: mean_pairwise_tv(make_world(6, 80, 8, 0.1, s, seed=2)["word_dist"]) for s in
          (0.0, 0.2, 0.5, 1.0)}  # fmt: skip
    assert tv[0.0] < 1e-12  # every user has the same p_i(x)
    assert 0 < tv[0.2] < tv[0.5] < tv[1.0]
    dist = make_world(6, 80, 8, 0.1, 0.5, seed=2)["word_dist"]
    assert np.allclose(dist.sum(axis=1), 1.0)


def test_labelling_rule_is_global_without_preferences_and_personal_with_them():
    world = make_world(8, 50, 10, 0.0, 0.3, seed=0)
    assert (world["labels"] == world["global_labels"]).all()
    assert world["global_labels"].tolist() == [1] * 5 + [0] * 5  # first half spam
    world = make_world(8, 50, 10, 0.3, 0.3, seed=0)
    flips = (world["labels"] != world["global_labels"]).sum(axis=1)
    assert flips.tolist() == [3] * 8  # round(0.3 * 10) topics per user
    assert len({tuple(r) for r in world["labels"]}) > 1  # users disagree with each other
    # the mails' labels follow the rule of their user's topics
    corpus = make_personal_spam(**SMALL, preference_strength=0.5, seed=0)
    for i, mails in enumerate(corpus["splits"]["train"]):
        assert np.array_equal(mails["y"], corpus["world"]["labels"][i][mails["z"]])


def test_a_logistic_regression_on_one_users_mails_is_well_above_chance():
    corpus = make_personal_spam(users=1, mails_per_user=(2000, 2000), test_per_user=1000, seed=5)
    train_mails, test_mails = corpus["splits"]["train"][0], corpus["splits"]["test"][0]
    torch.manual_seed(0)
    x, y = torch.from_numpy(train_mails["x"]), torch.from_numpy(train_mails["y"]).float()
    model = torch.nn.Linear(x.shape[1], 1)
    optim = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        optim.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y).backward()
        optim.step()
    pred = (model(torch.from_numpy(test_mails["x"]))[:, 0] > 0).numpy()
    accuracy = (pred == test_mails["y"]).mean()
    majority = max(test_mails["y"].mean(), 1 - test_mails["y"].mean())
    assert accuracy > 0.9 and accuracy > majority + 0.3, (accuracy, majority)


def test_builder_orders_users_by_data_and_records_the_global_rule_accuracy():
    data = personal_spam_tasks(users=3, vocab_size=40, topics=4, mail_length=10.0,
                               preference_strength=0.5, user_shift=0.2, mails_per_user=[4, 64],
                               data_scale=1.0, val_per_user=10, test_per_user=200, data_seed=0,
                               data={})  # fmt: skip
    assert data.task_names == ["user0", "user1", "user2"] and data.outputs == [2, 2, 2]
    assert data.input_shape == (40,) and data.kind == "classification"
    assert [len(p) for p in data.splits["train"]] == [4, 16, 64]
    assert data.splits["train"][0].y.dtype == torch.int64
    assert data.info["train_mails"] == {"user0": 4, "user1": 16, "user2": 64}
    # round(0.5 * 4) = 2 of 4 topics flipped: a global filter is wrong on about half the mails
    assert all(0.2 < a < 0.8 for a in data.info["global_rule_accuracy"].values())


# ------------------------------------------------------------------ bad options


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task.preference_strength=1.5", r"task.preference_strength: 1.5 is above the maximum 1.0"),
        ("task.user_shift=-0.1", r"task.user_shift: -0.1 is below the minimum 0.0"),
        ("task.data_scale=0", r"task.data_scale: 0.* must be greater than 0"),
        ("task.topics=1", r"task.topics: 1 is below the minimum 2"),
        ("task.mails_per_user=[50,5]", r"task.mails_per_user: expected \[min, max\] with 1 <= mi"),
        ("task.mails_per_user=[5]", r"task.mails_per_user: expected \[min, max\], got \[5\]"),
    ],
)
def test_bad_options_are_refused_in_one_line(tmp_path, override, message):
    with pytest.raises(UserError, match=message) as info:
        train(compose(tiny_spam(tmp_path, override)))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "metrics.json").exists()


# ------------------------------------------------------------------ end to end


@pytest.mark.parametrize(
    "model",
    [
        ("model=independent",),
        ("model=hard_sharing",),
        ("model=conditioned", "model.descriptor=embedding", "model.heads=shared"),
    ],
    ids=["independent", "hard_sharing", "conditioned_embedding"],
)
def test_tiny_run_finishes_with_per_user_accuracies(tmp_path, model):
    train(compose(tiny_spam(tmp_path, *model)))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert set(metrics["test"]) >= {f"user{i}/accuracy" for i in range(4)} | {"accuracy"}
    assert all(0.0 <= metrics["test"][f"user{i}/accuracy"] <= 1.0 for i in range(4))


def test_preset_composes_and_every_model_in_its_grid_validates():
    cfg = compose(["experiment=personal_spam"], return_hydra_config=True)
    assert cfg.task._target_.endswith("personal_spam_tasks") and cfg.backbone.hidden == [64]
    assert cfg.task.users == 8 and list(cfg.task.mails_per_user) == [10, 400]
    params = cfg.hydra.sweeper.params
    assert params["task.data_scale"] == "0.25,1,4"
    assert params["model"] == "independent,hard_sharing,conditioned" and params["seed"] == "0,1,2"
    for model in params["model"].split(","):  # every grid point composes and validates
        from mtl_cli.config import validate

        validate(compose(["experiment=personal_spam", f"model={model}", "task.data_scale=4"]))


@pytest.mark.slow
def test_preset_sweep_runs_tiny_and_reports_per_user_columns(tmp_path):
    sweep = tmp_path / "sweep"
    result = mtl("train", "-m", "experiment=personal_spam", "trainer=debug", "trainer.steps=4",
                 "trainer.eval_every=2", "device=cpu", "trainer.threads=1",
                 "trainer.diagnostics=false", "task.data_scale=0.25,1", "seed=0",
                 f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 6  # data_scale {0.25, 1} x 3 models
    report = mtl("report", str(sweep), "metrics=[test/accuracy,test/*/accuracy]", cwd=tmp_path,
                 check=True)  # fmt: skip
    assert "test/user0/accuracy" in report.stdout and "test/user7/accuracy" in report.stdout
    assert "Δm" in report.stdout
