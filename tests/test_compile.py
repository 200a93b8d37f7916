"""`trainer.compile`: the setting, compiled vs eager gradients (task-gradient matrix, MAML's inner
loop), the fall-back of a model that cannot be compiled, checkpoints shared with eager runs.

Most tests swap torch.compile's backend for a cheap one (dynamo's tracing only) or a broken one;
the tests that compile with inductor on the CPU are few and tiny."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtl_cli.compiling import compile_setting, failure_reason, is_compile_error
from mtl_cli.config import compose, validate
from mtl_cli.errors import UserError
from mtl_cli.io import read_jsonl
from mtl_cli.run import Run, train
from tests.conftest import ROOT, mtl, tiny, tiny_cli

TIMING = {"steps_per_s", "wall_time_s", "resumed_from"}
#: a tiny MAML: 5-way 1-shot, 1 episode of 1 query per class, conv4 with 4 channels, second order
MAML_TINY = [
    "task=meta/hershey_5w1s",
    "task.eval_episodes=2",
    "task.meta_batch_size=1",
    "task.queries=1",
    "model=meta/maml",
    "model.eval_inner_steps=2",
    "backbone=conv4",
    "backbone.hidden_channels=4",
]
#: two tasks (PCGrad needs two), a narrow MLP: few graphs for inductor to compile
PCGRAD_TINY = ["task.alphabets=[digits,markers]", "backbone.hidden=[32,32]", "loss=pcgrad"]


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """No compiled frame, backend or recompile count leaks from one test into another."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def with_backend(monkeypatch, backend) -> None:
    """Make every torch.compile (nn.Module.compile included) use `backend` instead of inductor."""
    real = torch.compile

    def compile_with(model=None, **kwargs):
        kwargs.pop("mode", None)
        return real(model, backend=backend, **kwargs)

    monkeypatch.setattr(torch, "compile", compile_with)


def traced(gm, example_inputs):
    """A backend that runs dynamo's captured graph as it is (no AOTAutograd, no inductor)."""
    return gm.forward


def broken(gm, example_inputs):
    raise RuntimeError("broken backend")


def broken_in_evaluation(gm, example_inputs):
    """Compiles training graphs, fails on the first evaluation graph (built under no_grad)."""
    if not torch.is_grad_enabled():
        raise RuntimeError("broken in evaluation")
    return gm.forward


def without_timing(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING}


def rows(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(path)]


def compile_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "cannot be compiled" in r.getMessage()
    ]


# ------------------------------------------------------------------ the setting


@pytest.mark.parametrize(
    ("override", "value", "setting"),
    [("true", True, "true"), ("false", False, "false"), ("auto", "auto", "auto")],
)
def test_compile_setting_composes_from_the_command_line(tmp_path, override, value, setting):
    cfg = compose(tiny(tmp_path, f"trainer.compile={override}"))
    validate(cfg)
    assert cfg.trainer.compile == value and type(cfg.trainer.compile) is type(value)
    assert compile_setting(cfg.trainer.compile) == setting


def test_compile_defaults_and_modes(tmp_path):
    cfg = compose(tiny(tmp_path))
    assert cfg.trainer.compile is False and cfg.trainer.compile_mode == "default"
    for mode in ("default", "reduce-overhead", "max-autotune"):
        validate(compose(tiny(tmp_path, f"trainer.compile_mode={mode}")))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "trainer.compile=maybe",
            "trainer.compile: invalid value 'maybe'; allowed: false, true, auto",
        ),
        ("trainer.compile=1", "trainer.compile: invalid value '1'; allowed: false, true, auto"),
        (
            "trainer.compile_mode=fast",
            "trainer.compile_mode: invalid value 'fast'; "
            "allowed: default, reduce-overhead, max-autotune",
        ),
    ],
)
def test_bad_compile_settings_are_refused(tmp_path, override, message):
    with pytest.raises(UserError) as info:
        validate(compose(tiny(tmp_path, override)))
    assert str(info.value) == message


def test_bad_compile_setting_is_one_line_on_the_command_line(tmp_path):
    result = mtl("train", *tiny_cli("trainer.compile=maybe"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mtl: error: trainer.compile: invalid value 'maybe'; allowed: false, true, auto"
    ]
    assert not (tmp_path / "outputs").exists()


def test_compile_errors_are_told_from_model_errors():
    def model_code():
        raise ValueError("support_x: expected [B, S, 1, 28, 28]")

    with pytest.raises(ValueError) as info:
        model_code()
    assert not is_compile_error(info.value)
    assert not is_compile_error(UserError("trainer.compile: ..."))
    failure = torch._dynamo.exc.Unsupported("graph break")
    assert is_compile_error(failure)
    assert failure_reason(
        RuntimeError("backend='inductor' raised:\nRuntimeError: no gcc\n\nmore")
    ) == ("backend='inductor' raised: RuntimeError: no gcc")


# ------------------------------------------------------------------ fall-back


def test_compile_true_with_a_model_that_cannot_be_compiled_is_a_one_line_error(
    tmp_path, monkeypatch
):
    with_backend(monkeypatch, broken)
    with pytest.raises(UserError) as info:
        train(compose(tiny(tmp_path / "run", "trainer.compile=true")))
    message = str(info.value)
    assert message == (
        "trainer.compile: model 'hard_sharing' cannot be compiled (backend='broken' raised: "
        "RuntimeError: broken backend); use trainer.compile=auto to fall back to eager"
    )
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == message
    assert summary["step"] == 0


def test_compile_auto_falls_back_to_exactly_the_eager_run(tmp_path, monkeypatch, caplog):
    eager = train(compose(tiny(tmp_path / "eager")))
    with_backend(monkeypatch, broken)
    caplog.set_level(logging.INFO, logger="mtl_cli")
    auto = train(compose(tiny(tmp_path / "auto", "trainer.compile=auto")))
    (warning,) = compile_warnings(caplog)
    assert warning.startswith("trainer.compile=auto: model 'hard_sharing' cannot be compiled (")
    assert warning.endswith("); continuing eager") and "\n" not in warning
    assert auto["compiled"] is False and eager["compiled"] is False
    # the failed first step was put back and run again eager: nothing differs from the eager run
    assert without_timing(auto) == without_timing(eager)
    assert rows(tmp_path / "auto" / "metrics.jsonl") == rows(tmp_path / "eager" / "metrics.jsonl")


@pytest.mark.parametrize("setting", ["true", "auto"])
def test_a_failure_at_the_first_evaluation(tmp_path, monkeypatch, caplog, setting):
    with_backend(monkeypatch, broken_in_evaluation)
    caplog.set_level(logging.INFO, logger="mtl_cli")
    cfg = compose(tiny(tmp_path / "run", f"trainer.compile={setting}"))
    if setting == "true":
        with pytest.raises(UserError, match=r"model 'hard_sharing' cannot be compiled \(.*broken"):
            train(cfg)
        return
    summary = train(cfg)
    assert summary["status"] == "finished" and summary["compiled"] is False
    assert len(compile_warnings(caplog)) == 1
    first = read_jsonl(tmp_path / "run" / "metrics.jsonl")[0]
    assert first["step"] == 3 and 0.0 <= first["val/accuracy"] <= 1.0


def test_compiled_and_eager_runs_share_checkpoints(tmp_path, monkeypatch):
    """The same state_dict keys (no `_orig_mod.` prefix); each resumes the other (trainer.compile
    is a run-control key, like trainer.steps)."""
    with_backend(monkeypatch, traced)
    eager_dir, compiled_dir = tmp_path / "eager", tmp_path / "compiled"
    train(compose(tiny(eager_dir, "trainer.steps=3")))
    train(compose(tiny(compiled_dir, "trainer.steps=3", "trainer.compile=true")))
    eager_keys = list(torch.load(eager_dir / "checkpoints/last.pt")["model"])
    compiled_keys = list(torch.load(compiled_dir / "checkpoints/last.pt")["model"])
    assert compiled_keys == eager_keys and not any("_orig_mod" in k for k in compiled_keys)
    best = torch.load(compiled_dir / "checkpoints/best.pt")["model"]
    assert list(best) == eager_keys

    resumed_compiled = train(compose(tiny(eager_dir, "trainer.compile=true")))  # eager -> compiled
    resumed_eager = train(compose(tiny(compiled_dir, "trainer.compile=false")))  # compiled -> eager
    assert resumed_compiled["resumed_from"] == 3 and resumed_compiled["step"] == 6
    assert resumed_compiled["compiled"] is True and resumed_eager["compiled"] is False
    assert resumed_eager["resumed_from"] == 3 and resumed_eager["status"] == "finished"


# ------------------------------------------------------------------ compiled == eager (inductor)


def _one_step(run: Run) -> torch.Tensor:
    run.optimizer.zero_grad(set_to_none=True)
    losses, tasks, rep = run.family.train_losses(run.model, run.generator)
    run.weighting.keep_task_gradients = True
    run.weighting.backward(losses, tasks, run.model, rep)
    return losses.detach()


#: what the subprocess does: compile with torch's defaults (donated buffers) and run one plain
#: backward per graph, leaving inductor's on-disk cache with backwards that overwrite their
#: saved tensors
_POISON = """
import sys, torch
from mtl_cli.config import compose
from mtl_cli.run import Run
run = Run(compose(sys.argv[1:]))
run.model.compile()
losses, tasks, rep = run.family.train_losses(run.model, run.generator)
losses.sum().backward()
"""


@pytest.mark.slow  # inductor compiles on the CPU: 20-50 s with a cold cache
def test_pcgrad_step_compiled_equals_eager(tmp_path):
    """One step of hard_sharing + PCGrad: the task-gradient matrix G (one backward per task
    through the same compiled graph) and every `.grad` equal eager's.

    Inductor's on-disk cache first receives backwards compiled by another process with torch's
    default donated buffers (they overwrite their saved tensors: one backward only); torch 2.13
    serves them to a process that turned donation off, and G's extra backwards then corrupt the
    gradients (0.18 off). The compiler keeps such cache entries out."""
    cache = tmp_path / "inductor-cache"
    overrides = tiny(tmp_path / "poison", *PCGRAD_TINY)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", _POISON, *overrides], check=True, env=env, cwd=ROOT, timeout=300
    )
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

    with temporary_cache_dir(str(cache)):
        eager = Run(compose(tiny(tmp_path / "eager", *PCGRAD_TINY)))
        compiled = Run(compose(tiny(tmp_path / "compiled", *PCGRAD_TINY, "trainer.compile=true")))
        for _ in range(2):  # the first step compiles, the second runs the compiled graphs
            eager_losses, compiled_losses = _one_step(eager), _one_step(compiled)
            torch.testing.assert_close(compiled_losses, eager_losses, rtol=0, atol=1e-5)
            G, G_eager = compiled.weighting.last_gradients, eager.weighting.last_gradients
            assert G.shape[0] == 2 and G.abs().max() > 0
            torch.testing.assert_close(G, G_eager, rtol=0, atol=1e-5)
            for (name, p), q in zip(
                compiled.model.named_parameters(), eager.model.parameters(), strict=True
            ):
                torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-5, msg=name)
            eager.optimizer.step()
            compiled.optimizer.step()
    assert compiled.compiler.compiled


@pytest.mark.slow  # inductor compiles on the CPU: 20-50 s with a cold cache
def test_maml_meta_step_compiled_equals_eager(tmp_path):
    """Second-order MAML compiles (its support loss, differentiated twice, stays eager): one
    meta-step gives eager's query loss and meta-gradients; evaluation (inner steps under
    no_grad) gives eager's predictions."""
    eager = Run(compose(tiny(tmp_path / "eager", *MAML_TINY)))
    compiled = Run(compose(tiny(tmp_path / "compiled", *MAML_TINY, "trainer.compile=true")))
    assert not compiled.model.first_order
    torch.testing.assert_close(_one_step(compiled), _one_step(eager), rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(
        compiled.model.named_parameters(), eager.model.parameters(), strict=True
    ):
        assert q.grad is not None and q.grad.abs().max() > 0, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
    assert compiled.compiler.compiled  # no fall-back: the meta-step ran compiled
    sx, sy, qx, _ = compiled.family._episode("val", 1, torch.Generator().manual_seed(1))
    compiled.model.eval()
    eager.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            compiled.model(sx, sy, qx), eager.model(sx, sy, qx), rtol=1e-4, atol=1e-4
        )


def test_compile_true_trains_the_default_experiment(tmp_path):
    """The default experiment (tiny) compiled with inductor: finishes, says compiled, matches the
    eager run, and its checkpoint continues eagerly."""
    eager = train(compose(tiny(tmp_path / "eager")))
    compiled = train(compose(tiny(tmp_path / "compiled", "trainer.compile=true")))
    on_disk = json.loads((tmp_path / "compiled" / "metrics.json").read_text())
    assert on_disk["status"] == "finished" and on_disk["compiled"] is True
    assert compiled["step"] == eager["step"] == 6
    for split in ("val", "test", "best_test"):
        for key, value in eager[split].items():
            assert compiled[split][key] == pytest.approx(value, abs=1e-4), (split, key)
    keys = list(torch.load(tmp_path / "eager" / "checkpoints/last.pt")["model"])
    assert list(torch.load(tmp_path / "compiled" / "checkpoints/last.pt")["model"]) == keys
    more = train(compose(tiny(tmp_path / "compiled", "trainer.steps=9")))
    assert more["resumed_from"] == 6 and more["step"] == 9 and more["compiled"] is False
