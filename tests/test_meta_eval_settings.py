"""Evaluation as papers do it: other (ways, shots, queries) at meta-val/test, the BatchNorm mode of
the adapting learners, `eval_inner_steps`, and `mtl eval run=<dir>` with evaluation-side settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from mtl_cli.config import compose, validate
from mtl_cli.errors import UserError
from mtl_cli.models.meta.anil import ANIL
from mtl_cli.models.meta.maml import MAML
from mtl_cli.models.meta.reptile import Reptile
from mtl_cli.run import build_family, evaluate, train
from tests.conftest import mtl, tiny
from tests.test_meta_e2e import FIVE_ALPHABETS

HERSHEY = ["task=meta/hershey_5w1s", f"task.alphabets={FIVE_ALPHABETS}", "device=cpu"]
LEARNERS = {"maml": MAML, "anil": ANIL, "reptile": Reptile}


def family(*overrides: str):
    cfg = compose([*HERSHEY, "model=meta/protonet", *overrides])
    validate(cfg)
    return build_family(cfg, torch.device("cpu"))


def test_val_and_test_episodes_use_the_eval_settings():
    fam = family("task.ways=10", "task.eval_ways=5", "task.eval_shots=2", "task.eval_queries=3")
    assert (fam.samplers["train"].ways, fam.samplers["train"].shots) == (10, 1)
    for split in ("val", "test"):
        sx, sy, qx, qy = next(fam._episodes(split))
        assert sx.shape[1] == 5 * 2 and qx.shape[1] == 5 * 3
        assert sy.max() == 4 and qy.max() == 4
    sx, _, qx, _ = fam._episode("train", 2, torch.Generator().manual_seed(0))
    assert sx.shape[1] == 10 and qx.shape[1] == 10 * 5  # training keeps ways, shots, queries


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task.eval_ways=50"], "task.eval_ways: 50 exceeds the"),
        (["task.eval_shots=15", "task.eval_queries=10"], "task.eval_shots + task.eval_queries"),
        (["task.eval_queries=20"], "task.shots + task.eval_queries: 1 + 20 exceeds the 20"),
    ],
)
def test_eval_settings_beyond_the_split_are_refused(overrides, message):
    with pytest.raises(UserError, match="^" + message.replace("+", r"\+")) as info:
        family(*overrides)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("model", ["meta/maml", "meta/anil", "meta/reptile", "meta/mann"])
def test_learners_with_a_ways_sized_layer_refuse_other_eval_ways(model):
    with pytest.raises(UserError, match=f"task.eval_ways: 3 differs .*model={model} ") as info:
        validate(compose([*HERSHEY, f"model={model}", "task.eval_ways=3"]))
    assert "meta/protonet" in str(info.value)  # names the way-agnostic choices
    validate(compose([*HERSHEY, f"model={model}", "task.eval_ways=5"]))  # = ways: allowed


def test_sinusoid_eval_shots():
    cfg = compose(["task=meta/sinusoid", "device=cpu", "task.eval_shots=5", "model=meta/maml"])
    fam = build_family(cfg, torch.device("cpu"))
    assert fam.samplers["train"].shots == 10
    sx, _, qx, _ = next(fam._episodes("test"))
    assert sx.shape[1] == 5 and qx.shape[1] == 10


# ------------------------------------------------------------------ BatchNorm mode, inner steps


def bn_body() -> nn.Module:
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU())
    net.out_features = 8
    return net


def learner(name: str, **options) -> nn.Module:
    torch.manual_seed(0)
    model = LEARNERS[name]((12,), 3, "classification", bn_body, inner_lr=0.1, **options)
    return model.eval()


def episode(q: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sx = torch.randn(2, 6, 12, generator=g)
    sy = torch.arange(3).repeat(2).expand(2, 6).contiguous()
    return sx, sy, torch.randn(2, q, 12, generator=g)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_per_example_predictions_ignore_the_other_queries(name):
    sx, sy, qx = episode()
    others = qx.clone()
    others[:, 1:] = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(9)) * 3 + 1
    with torch.no_grad():
        per_example = learner(name, bn_mode="per_example")
        first, changed = per_example(sx, sy, qx), per_example(sx, sy, others)
        assert torch.equal(first[:, 0], changed[:, 0])  # exact: query 0 alone with the support
        assert not torch.equal(first[:, 1:], changed[:, 1:])
        alone = per_example(sx, sy, qx[:, :1])
        torch.testing.assert_close(alone[:, 0], first[:, 0], rtol=1e-5, atol=1e-6)
        transductive = learner(name)  # the default: statistics of the query batch
        assert transductive.bn_mode == "transductive"
        a, b = transductive(sx, sy, qx), transductive(sx, sy, others)
        assert (a[:, 0] - b[:, 0]).abs().max() > 1e-3  # the other queries moved query 0


@pytest.mark.parametrize("name", sorted(LEARNERS))
@pytest.mark.parametrize("bn_mode", ["transductive", "per_example"])
def test_eval_inner_steps_k_is_calling_with_inner_steps_k(name, bn_mode):
    sx, sy, qx = episode()
    with torch.no_grad():
        by_option = learner(name, eval_inner_steps=4, bn_mode=bn_mode)(sx, sy, qx)
        by_call = learner(name, eval_inner_steps=1, bn_mode=bn_mode)(sx, sy, qx, inner_steps=4)
        default = learner(name, eval_inner_steps=None, inner_steps=2, bn_mode=bn_mode)
    assert torch.equal(by_option, by_call)
    assert default.eval_inner_steps == 2  # null = inner_steps
    assert not torch.equal(by_option, learner(name, eval_inner_steps=1)(sx, sy, qx))


def test_bad_bn_mode_is_refused():
    with pytest.raises(UserError, match="^model.bn_mode: invalid value 'batch'; allowed: "):
        validate(compose([*HERSHEY, "model=meta/maml", "model.bn_mode=batch"]))
    with pytest.raises(ValueError, match="^bn_mode: invalid value 'batch'"):
        learner("maml", bn_mode="batch")


# ------------------------------------------------------------------ mtl eval run=<dir> ...


def only_run(cwd: Path) -> Path:
    (run,) = sorted((cwd / "outputs/runs/meta").glob("*/*"))
    return run


@pytest.mark.slow  # two subprocesses: about 30 s on a shared CPU
def test_mtl_eval_at_fewer_ways_without_retraining(tmp_path):
    """ProtoNet trained 10-way: its 5-way test accuracy (same embedding) beats its 10-way one."""
    train_args = [
        "train", *HERSHEY, "model=meta/protonet", "backbone=conv4", "backbone.hidden_channels=8",
        "task.ways=10", "task.queries=2", "task.meta_batch_size=4", "task.eval_episodes=100",
        "trainer.steps=40", "trainer.eval_every=40", "trainer.threads=1", "optim.lr=0.003",
    ]  # fmt: skip
    mtl(*train_args, cwd=tmp_path, check=True)
    run = only_run(tmp_path)
    summary_before = (run / "metrics.json").read_bytes()
    ten = json.loads(summary_before)["best_test"]  # 10-way test episodes, as trained
    result = mtl(
        "eval", f"run={run}", "device=cpu", "task.eval_ways=5", "task.eval_episodes=150",
        cwd=tmp_path, check=True,
    )  # fmt: skip
    name = "eval_metrics.task.eval_episodes=150+task.eval_ways=5.json"
    five = json.loads((run / name).read_text())
    assert five["overrides"] == {"task.eval_ways": 5, "task.eval_episodes": 150}
    assert "task.eval_ways=5" in result.stdout
    assert (run / "metrics.json").read_bytes() == summary_before  # nothing written is touched
    assert not (run / "eval_metrics.json").exists()  # the plain `mtl eval` result has its own
    assert ten["accuracy"] > 0.3  # well above 10-way chance: a trained embedding
    assert five["metrics"]["accuracy"] > ten["accuracy"] + 0.05, (five["metrics"], ten)

    refused = mtl("eval", f"run={run}", "task.ways=5", cwd=tmp_path)
    assert refused.returncode != 0 and refused.stderr.strip().count("\n") == 0
    assert "task.ways: mtl eval cannot change it" in refused.stderr
    assert "task.eval_ways" in refused.stderr and "model.eval_inner_steps" in refused.stderr
    not_an_option = mtl("eval", f"run={run}", "model.bn_mode=per_example", cwd=tmp_path)
    assert not_an_option.returncode != 0
    assert "model.bn_mode: not an option of this run's model (model=meta/protonet)" in (
        not_an_option.stderr
    )


def test_eval_of_a_maml_run_takes_its_eval_settings_and_refuses_other_ways(tmp_path):
    overrides = tiny(
        tmp_path / "run", *HERSHEY, "model=meta/maml", "backbone=conv4",
        "backbone.hidden_channels=4", "task.queries=1", "task.meta_batch_size=2",
        "task.eval_episodes=4",
    )  # fmt: skip
    train(compose(overrides))
    (tmp_path / "run/.hydra").mkdir()  # evaluate() reads the config Hydra saves with a run
    OmegaConf.save(compose(overrides), tmp_path / "run/.hydra/config.yaml")
    with pytest.raises(UserError, match="^task.eval_ways: 3 differs from task.ways=5, but model="):
        evaluate(tmp_path / "run", device="cpu", overrides={"task.eval_ways": 3})
    settings = {"model.eval_inner_steps": 10, "model.bn_mode": "per_example", "task.eval_shots": 2}
    result = evaluate(tmp_path / "run", device="cpu", overrides=settings)
    (written,) = (tmp_path / "run").glob("eval_metrics.*bn_mode=per_example*.json")
    assert json.loads(written.read_text()) == json.loads(json.dumps(result))
    assert result["overrides"] == settings and 0.0 <= result["metrics"]["accuracy"] <= 1.0
    with pytest.raises(UserError, match="^model.bn_mode: invalid value 'batch'; allowed: "):
        evaluate(tmp_path / "run", device="cpu", overrides={"model.bn_mode": "batch"})


def test_mtl_train_refuses_other_eval_ways_for_maml(tmp_path):
    refused = mtl("train", *HERSHEY, "model=meta/maml", "task.eval_ways=3", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "task.eval_ways: 3 differs from task.ways=5, but model=meta/maml" in refused.stderr


def test_per_example_is_each_query_alone_with_the_support_also_for_meta_gradients():
    """vmap'd per-example predictions equal a plain loop over queries, with equal MAML
    meta-gradients (second order through BatchNorm; vmap only wraps the query forward)."""
    from torch.func import functional_call

    sx, sy, qx = episode(q=4)
    qy = torch.randint(0, 3, (2, 4), generator=torch.Generator().manual_seed(1))
    model = learner("maml", bn_mode="per_example").train()
    by_vmap = model(sx, sy, qx)
    grads = torch.autograd.grad(model.loss(by_vmap, qy), list(model.parameters()))
    params = dict(model.net.named_parameters())
    looped = []
    for s_x, s_y, q_x in zip(sx, sy, qx, strict=True):
        fast = model._adapt(params, model._inner_rates(), s_x, s_y, model.inner_steps)
        rows = [functional_call(model.net, fast, (torch.cat([s_x, q[None]]),))[-1] for q in q_x]
        looped.append(torch.stack(rows))
    looped = torch.stack(looped)
    torch.testing.assert_close(by_vmap, looped, rtol=1e-5, atol=1e-6)
    expected = torch.autograd.grad(model.loss(looped, qy), list(model.parameters()))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
