"""`trainer.precision`: bf16 autocast on CPU, loss scaling seen by the weighting methods, the
gradient scaler's skipped steps and checkpointed state, and 16-mixed refused off CUDA."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from mtl_cli.config import compose, validate
from mtl_cli.errors import UserError
from mtl_cli.io import read_jsonl
from mtl_cli.loss.base import TaskSetup
from mtl_cli.loss.cagrad import CAGrad
from mtl_cli.loss.dwa import DWA
from mtl_cli.loss.gradnorm import GradNorm
from mtl_cli.loss.imtl import IMTL
from mtl_cli.loss.mgda import MGDA
from mtl_cli.loss.nash import NashMTL
from mtl_cli.loss.pcgrad import PCGrad
from mtl_cli.loss.uncertainty import Uncertainty
from mtl_cli.run import evaluate, train
from tests.conftest import mtl, tiny, tiny_cli
from tests.test_weighting_backward import Tiny, _batches, _losses

TIMING = {"steps_per_s", "wall_time_s", "resumed_from"}


def without_timing(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING}


def rows(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(path)]


def finite_numbers(node) -> bool:
    if isinstance(node, dict):
        return all(finite_numbers(v) for v in node.values())
    if isinstance(node, float):
        return math.isfinite(node)
    return True


# ---------------------------------------------------------------- config


def test_precision_composes_from_the_command_line_as_a_string():
    for given, expected in [("32", "32"), ("bf16", "bf16"), ("16-mixed", "16-mixed")]:
        cfg = compose(["trainer=debug", f"trainer.precision={given}", "device=cuda"])
        assert cfg.trainer.precision == expected  # Hydra parses 32 as an int; the schema says str
        validate(cfg)
    assert compose([]).trainer.precision == "32"
    with pytest.raises(
        UserError, match="trainer.precision: invalid value 'fp8'; allowed: 32, bf16"
    ):
        validate(compose(["trainer.precision=fp8"]))


def test_16_mixed_on_cpu_is_refused_before_any_run_dir(tmp_path):
    result = mtl("train", *tiny_cli("trainer.precision=16-mixed"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mtl: error: trainer.precision: 16-mixed needs a CUDA device; the run's device is cpu; "
        "allowed there: 32, bf16"
    )
    assert not (tmp_path / "outputs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="device=auto picks CUDA here")
def test_16_mixed_with_device_auto_is_refused_when_auto_is_the_cpu(tmp_path):
    with pytest.raises(UserError, match="16-mixed needs a CUDA device; the run's device is cpu"):
        train(compose(tiny(tmp_path / "run", "device=auto", "trainer.precision=16-mixed")))
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


# ---------------------------------------------------------------- bf16 end to end


@pytest.fixture
def linear_output_dtypes():
    """(grad enabled, dtype) of every nn.Linear output during the test (a global forward hook)."""
    seen: set[tuple[bool, torch.dtype]] = set()

    def hook(module, args, output):
        if isinstance(module, nn.Linear):
            seen.add((torch.is_grad_enabled(), output.dtype))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    yield seen
    handle.remove()


@pytest.mark.parametrize("loss", ["equal", "pcgrad"])
def test_bf16_trains_with_bfloat16_forwards(tmp_path, loss, linear_output_dtypes):
    summary = train(compose(tiny(tmp_path / "run", "trainer.precision=bf16", f"loss={loss}")))
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["status"] == "finished" and on_disk["precision"] == "bf16"
    for key in ("val", "test", "best_test"):
        assert summary[key] and finite_numbers(summary[key]), key
    assert all(finite_numbers(r) for r in read_jsonl(tmp_path / "run" / "metrics.jsonl"))
    # training (grad enabled) and evaluation (no grad) forwards both ran in bfloat16
    assert linear_output_dtypes == {(True, torch.bfloat16), (False, torch.bfloat16)}
    # `mtl eval` evaluates in the run's precision: the same numbers as best_test
    (tmp_path / "run/.hydra").mkdir()  # evaluate() reads the config Hydra would have saved
    config = compose(tiny(tmp_path / "run", "trainer.precision=bf16", f"loss={loss}"))
    OmegaConf.save(config, tmp_path / "run/.hydra/config.yaml")
    result = evaluate(tmp_path / "run", split="test", checkpoint="best", device="cpu")
    assert result["precision"] == "bf16" and result["metrics"] == summary["best_test"]


def test_precision_32_keeps_float32_forwards(tmp_path, linear_output_dtypes):
    summary = train(compose(tiny(tmp_path / "run")))
    assert summary["precision"] == "32"
    assert {dtype for _, dtype in linear_output_dtypes} == {torch.float32}


def test_bf16_resumes_to_the_metrics_of_an_uninterrupted_run(tmp_path):
    args = ("trainer.precision=bf16", "loss=pcgrad", "trainer.eval_every=3")
    full = train(compose(tiny(tmp_path / "full", *args, "trainer.steps=9")))
    train(compose(tiny(tmp_path / "part", *args, "trainer.steps=3")))
    resumed = train(compose(tiny(tmp_path / "part", *args, "trainer.steps=9")))
    assert resumed["resumed_from"] == 3
    assert without_timing(resumed) == without_timing(full)
    assert rows(tmp_path / "part/metrics.jsonl") == rows(tmp_path / "full/metrics.jsonl")


# ---------------------------------------------------------------- loss scale in the methods

METHODS = {
    "mgda_loss": lambda: MGDA(normalization="loss"),
    "nash": NashMTL,
    "nash_reused_clipped": lambda: NashMTL(update_weights_every=2, max_norm=1e-3),
    "cagrad": CAGrad,
    "pcgrad": lambda: PCGrad(seed=0),
    "imtl": IMTL,
    "dwa": lambda: DWA(period=1),
    "uncertainty": lambda: Uncertainty(init_log_variance=0.5),
    "gradnorm": GradNorm,
}


def _steps(make, scale: float, shared_batch: bool, rep_grad: bool = False, steps: int = 4):
    """`steps` backwards of one method on fixed parameters: per step, every `.grad` divided by
    `scale`, `last_gradients` and the diagnostics."""
    model = Tiny()
    method = make().setup(TaskSetup.count(3))
    tasks = [2, 0, 1]
    out = []
    for step in range(steps):
        model.zero_grad(set_to_none=True)
        method.zero_grad(set_to_none=True)
        losses, z = _losses(model, _batches(seed=step + 1), tasks, shared_batch)
        method.loss_scale = scale
        method.keep_task_gradients = True
        stats = method.backward(losses, tasks, model, z if rep_grad else None)
        params = [*model.parameters(), *method.parameters()]
        grads = [p.grad / scale for p in params if p.grad is not None]
        out.append((grads, method.last_gradients, stats))
    return out


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("shared_batch", [False, True])
def test_methods_see_unscaled_gradients_and_leave_scaled_grads(name, shared_batch):
    plain = _steps(METHODS[name], 1.0, shared_batch)
    scaled = _steps(METHODS[name], 1024.0, shared_batch)
    for (g1, G1, s1), (g2, G2, s2) in zip(plain, scaled, strict=True):
        assert len(g1) == len(g2) > 0
        for a, b in zip(g1, g2, strict=True):
            torch.testing.assert_close(b, a)
        assert G1 is not None and G2 is not None
        torch.testing.assert_close(G2, G1)  # last_gradients are unscaled
        assert s2.keys() == s1.keys()
        for key in s1:
            assert s2[key] == pytest.approx(s1[key], rel=1e-5, abs=1e-9), key


@pytest.mark.parametrize("make", [MGDA, NashMTL, PCGrad], ids=["mgda", "nash", "pcgrad"])
def test_rep_grad_sees_unscaled_gradients(make):
    plain = _steps(lambda: make(rep_grad=True), 1.0, True, rep_grad=True)
    scaled = _steps(lambda: make(rep_grad=True), 1024.0, True, rep_grad=True)
    for (g1, _, _), (g2, _, _) in zip(plain, scaled, strict=True):
        for a, b in zip(g1, g2, strict=True):
            torch.testing.assert_close(b, a)


# ---------------------------------------------------------------- overflow steps


def _method_state(method) -> dict:
    state = {k: v.clone() for k, v in method.state_dict().items() if isinstance(v, torch.Tensor)}
    if hasattr(method, "generator"):
        state["generator"] = method.generator.get_state()
    return state


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("nash", "scale"),
        ("pcgrad", "scale"),
        ("mgda_loss", "scale"),
        ("gradnorm", "scale"),
        ("nash", "loss"),
        ("dwa", "loss"),
        ("uncertainty", "loss"),
    ],
)
def test_a_non_finite_step_is_skipped_by_the_gradient_scaler(name, how):
    model = Tiny()
    method = METHODS[name]().setup(TaskSetup.count(3))
    params = [*model.parameters(), *method.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    scale = float(scaler.scale(torch.ones(())))  # as the trainer reads it (creates the scale)
    before = [p.detach().clone() for p in params]
    state_before = _method_state(method)

    losses, _ = _losses(model, _batches(), [0, 1, 2], False)
    if how == "scale":  # the scaled backward overflows: G is not finite, the losses are
        method.loss_scale = math.inf
    else:
        method.loss_scale = scale
        losses = losses * torch.tensor([1.0, math.inf, 1.0])
    stats = method.backward(losses, [0, 1, 2], model)

    assert method.last_step_skipped
    assert all(math.isnan(v) for v in stats.values())
    assert not all(bool(torch.isfinite(p.grad).all()) for p in model.parameters())
    state_after = _method_state(method)
    assert state_after.keys() == state_before.keys()
    for key, value in state_before.items():
        if key == "step" and name.startswith("nash"):
            continue  # Nash-MTL's update counter counts every step (docs/runs.md#precision)
        assert torch.equal(state_after[key], value), key

    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    for p, b in zip(params, before, strict=True):
        assert torch.equal(p.detach(), b)  # the step was skipped
    assert scaler.get_scale() == 2.0**15  # and the scale backed off

    # the next finite step is taken, at the new scale
    optimizer.zero_grad(set_to_none=True)
    method.loss_scale = float(scaler.scale(torch.ones(())))
    losses, _ = _losses(model, _batches(seed=2), [0, 1, 2], False)
    method.backward(losses, [0, 1, 2], model)
    assert not method.last_step_skipped
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    assert any(not torch.equal(p.detach(), b) for p, b in zip(params, before, strict=True))


# ---------------------------------------------------------------- 16-mixed, simulated on the CPU


@pytest.fixture
def float16_on_cpu(monkeypatch):
    """Lift the CUDA-only check: 16-mixed then runs CPU autocast to float16 with torch's CPU
    GradScaler, starting at `scale[0]` (the trainer's own code path, as on CUDA)."""
    import mtl_cli.config
    import mtl_cli.precision

    monkeypatch.setattr(mtl_cli.config, "precision_error", lambda *args: None)
    monkeypatch.setattr(mtl_cli.precision, "precision_error", lambda *args: None)
    scale = [2.0**16]
    original = torch.amp.GradScaler

    def scaler(*args, **kwargs):
        return original(*args, init_scale=scale[0], **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", functools.wraps(original)(scaler))
    return scale


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_16_mixed_skips_overflow_steps_and_resumes_with_the_scalers_state(
    tmp_path, float16_on_cpu, linear_output_dtypes
):
    float16_on_cpu[0] = 2.0**24  # float16 gradients overflow until the scale is low enough
    args = ("trainer.precision=16-mixed", "loss=nash", "trainer.eval_every=3")
    full = train(compose(tiny(tmp_path / "full", *args, "trainer.steps=9")))
    assert full["precision"] == "16-mixed" and finite_numbers(full["test"])
    assert (True, torch.float16) in linear_output_dtypes
    scaler = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)["precision"]
    assert 2.0**10 <= scaler["scaler"]["scale"] < 2.0**24  # it backed off at overflow steps

    train(compose(tiny(tmp_path / "part", *args, "trainer.steps=3")))
    part = torch.load(tmp_path / "part/checkpoints/last.pt", weights_only=True)["precision"]
    assert part["scaler"]["scale"] < 2.0**24
    resumed = train(compose(tiny(tmp_path / "part", *args, "trainer.steps=9")))
    assert resumed["resumed_from"] == 3
    assert without_timing(resumed) == without_timing(full)
    assert rows(tmp_path / "part/metrics.jsonl") == rows(tmp_path / "full/metrics.jsonl")


# ---------------------------------------------------------------- on a GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("loss", ["equal", "nash"])
def test_16_mixed_trains_on_cuda(tmp_path, loss, linear_output_dtypes):
    run = tmp_path / "run"
    summary = train(compose(tiny(run, "device=cuda", "trainer.precision=16-mixed", f"loss={loss}")))
    assert summary["precision"] == "16-mixed" and summary["device"].startswith("cuda")
    assert finite_numbers(summary["test"]) and finite_numbers(summary["best_test"])
    assert (True, torch.float16) in linear_output_dtypes
    assert (False, torch.float16) in linear_output_dtypes
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)["precision"]
    assert state["scaler"]["scale"] > 0
    # continues from its checkpoint with the scaler's state
    resumed = train(compose(tiny(run, "device=cuda", "trainer.precision=16-mixed",
                                 f"loss={loss}", "trainer.steps=9")))  # fmt: skip
    assert resumed["resumed_from"] == 6 and resumed["status"] == "finished"
    assert finite_numbers(resumed["test"])
