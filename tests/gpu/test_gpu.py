"""GPU checks (marker `gpu`): what `make test` cannot see on a CPU-only machine.

Run them on a CUDA machine with `make test-gpu` (`pytest -q tests/gpu`); they take about 3-5
minutes on one recent GPU, most of it torch.compile's first compilation. On a fresh machine the
venv needs a CUDA build of torch (`make setup` installs the CPU wheel by default):

    make setup TORCH='torch==2.13.0 --index-url <PyTorch CUDA wheel index for your driver>'
    make test-gpu                      # or: make test-gpu ARGS='-k resume -x'

(`make setup` does nothing when .venv is already installed: remove .venv first to switch from
the CPU wheel.) Without CUDA every test here is skipped with the reason, so `make test` and CI
on CPU machines just report them as skipped.

What is checked, all with `device=cuda` (cuda:0):

- a short run of each family: multitask (Hershey alphabets), multilabel (synthetic), meta
  (hershey_5w1s with ProtoNet and with MAML): finished, on cuda:0, finite metrics;
- the data live on the GPU: every split / episode-sampler image tensor is on the device, a
  training step copies from the host only a small int64 index tensor (none per step for the
  multi-task samplers, whose epoch order is sent once per epoch), and episodes gathered on the
  GPU equal the CPU's for the same seed (the sampler draws on the CPU);
- resume on CUDA: a run stopped after its first evaluation (SIGTERM to a real `mtl train`
  subprocess, and `trainer.steps` then continued, for a multitask and a conv4 ProtoNet run) ends
  with metrics.json and metrics.jsonl *identical* to an uninterrupted run. Exactness is demanded
  because the module makes CUDA deterministic: cudnn.deterministic=True, cudnn.benchmark=False,
  torch.use_deterministic_algorithms(True, warn_only=True) and CUBLAS_WORKSPACE_CONFIG=:4096:8
  (also passed to the subprocesses), with the same kernels on the same GPU in both runs. Without
  those settings cuDNN may pick other (non-deterministic) kernels and runs differ in the last bits;
  docs/runs.md says resume exactness is guaranteed on CPU;
- a 2-job sweep with `device=auto` puts job 0 on cuda:0 and job 1 on cuda:1 (needs 2 GPUs; skipped
  with the reason otherwise);
- every `trainer.precision` (32, bf16, 16-mixed) trains a gradient method (loss=pcgrad) to finite
  metrics;
- `trainer.compile=true` trains compiled (metrics.json says `compiled: true`) to finite metrics.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# cuBLAS is deterministic only with a fixed workspace; read when CUDA creates its first handle,
# so set before anything here touches the GPU (pytest imports this module before any test runs)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

from mtl_cli.config import compose  # noqa: E402
from mtl_cli.io import read_jsonl  # noqa: E402
from mtl_cli.run import Run, train  # noqa: E402
from tests.conftest import mtl, tiny, tiny_cli  # noqa: E402
from tests.test_device_data import CrossDeviceCopies  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU (torch.cuda.is_available() is false): run `make test-gpu` on a "
        "CUDA machine with a CUDA build of torch",
    ),
]

CUDA = "device=cuda"
CONV4 = ["backbone=conv4", "backbone.hidden_channels=16"]
META = ["task=meta/hershey_5w1s", "task.eval_episodes=20", "task.meta_batch_size=4", *CONV4]
FAMILIES = {
    "multitask-hershey": [],
    "multilabel-synthetic": [
        "task=multilabel/synthetic",
        "task.train_size=400",
        "model=hard_sharing",
    ],
    "meta-protonet": [*META, "model=meta/protonet"],
    "meta-maml": [*META, "model=meta/maml"],
}


@pytest.fixture(scope="module", autouse=True)
def deterministic_cuda():
    """Deterministic kernels for this module's in-process runs (see the module docstring)."""
    saved = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def gpu_run(out: Path, *overrides: str) -> list[str]:
    """Overrides of a tiny run on cuda (Hershey options only for Hershey tasks)."""
    task = next((o for o in overrides if o.startswith("task=")), "")
    if task and "hershey" not in task:
        return [f"paths.output_dir={out}", "trainer=debug", *overrides, CUDA]
    return tiny(out, *overrides, CUDA)


def assert_finite(metrics: dict) -> None:
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    assert metrics and not bad, bad


# ------------------------------------------------------------------ each family on the GPU


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_trains_on_cuda(tmp_path, name):
    summary = train(compose(gpu_run(tmp_path, *FAMILIES[name])))
    assert summary["status"] == "finished" and summary["device"] == "cuda:0"
    assert_finite(summary["val"])
    assert_finite(summary["test"])


# ------------------------------------------------------------------ data on the device


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_data_live_on_the_gpu_and_a_step_copies_only_indices(tmp_path, name):
    run = Run(compose(gpu_run(tmp_path, *FAMILIES[name])))
    family = run.family
    if hasattr(family, "samplers"):
        storages = [s.images for s in family.samplers.values()]
    else:
        splits = [
            p
            for parts in family.splits.values()
            for p in (parts if isinstance(parts, list) else [parts])
        ]
        storages = [t for p in splits for t in (p.x, p.y)]
    assert all(t.device == run.device for t in storages)
    for _ in range(2):  # the first step starts each task's first epoch
        family.train_losses(run.model, run.generator)
    with CrossDeviceCopies() as log:
        for _ in range(3):
            losses, _, _ = family.train_losses(run.model, run.generator)
        torch.cuda.synchronize()
    assert losses.device == run.device
    to_gpu = [c for c in log.copies if c[1] == "cuda"]
    assert all(c[2] == torch.int64 for c in to_gpu), to_gpu  # never images, never targets
    assert len(to_gpu) <= 3, to_gpu  # at most one small index copy per step


def test_episodes_on_the_gpu_equal_the_cpus_for_the_same_seed(tmp_path):
    from mtl_cli.data.episodes import to_device
    from mtl_cli.run import build_family

    sinusoid = ["task=meta/sinusoid", "model=meta/maml", "backbone=mlp"]
    for overrides in ([*META, "model=meta/protonet", "task.rotations=true"], sinusoid):
        cfg = compose(gpu_run(tmp_path, *overrides))
        cpu = build_family(cfg, torch.device("cpu"))
        gpu = build_family(cfg, torch.device("cuda:0"))
        for split in ("train", "val"):
            a = cpu._episode(split, 8, torch.Generator().manual_seed(3))
            b = gpu._episode(split, 8, torch.Generator().manual_seed(3))
            assert all(y.device.type == "cuda" for y in b)
            assert all(torch.equal(x, y.cpu()) for x, y in zip(a, b, strict=True)), split
    # the pinned, non-blocking packed copy keeps every value, shape and dtype
    host = (torch.arange(12).view(3, 4), torch.rand(5, 2), torch.arange(7), torch.rand(1))
    moved = to_device(host, "cuda")
    torch.cuda.synchronize()
    assert all(
        torch.equal(h, m.cpu()) and h.dtype == m.dtype for h, m in zip(host, moved, strict=True)
    )


# ------------------------------------------------------------------ resume on CUDA

LONG = ("trainer.steps=3000", "trainer.eval_every=50", "seed=7", CUDA)
#: the subprocesses get the same cuBLAS setting as this process
ENV = {"CUBLAS_WORKSPACE_CONFIG": os.environ["CUBLAS_WORKSPACE_CONFIG"]}


def _comparable(run: Path) -> tuple[dict, list[dict]]:
    """metrics.json and metrics.jsonl without timing fields."""
    timing = ("steps_per_s", "wall_time_s", "resumed_from")
    summary = json.loads((run / "metrics.json").read_text())
    rows = [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(run / "metrics.jsonl")]
    return {k: v for k, v in summary.items() if k not in timing}, rows


def test_sigterm_then_resume_on_cuda_matches_an_uninterrupted_run(tmp_path):
    """A real `mtl train` on cuda gets SIGTERM after its first evaluation, is resumed, and ends
    like an uninterrupted subprocess run (multitask MLP: cuBLAS only, deterministic with ENV)."""
    reference, run = tmp_path / "reference", tmp_path / "run"
    mtl("train", *tiny_cli(*LONG, f"hydra.run.dir={reference}"), cwd=tmp_path, env=ENV,
        timeout=600, check=True)  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtl_cli", "train", *tiny_cli(*LONG, f"hydra.run.dir={run}")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **ENV},
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "metrics.jsonl").exists() and read_jsonl(run / "metrics.jsonl"):
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be stopped: {proc.communicate()}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    interrupted = json.loads((run / "metrics.json").read_text())
    assert interrupted["status"] == "interrupted" and 50 <= interrupted["step"] < 3000
    mtl("train", f"hydra.run.dir={run}", cwd=tmp_path, env=ENV, timeout=600, check=True)
    resumed, rows = _comparable(run)
    assert resumed["status"] == "finished" and resumed["device"] == "cuda:0"
    assert (resumed, rows) == _comparable(reference)


@pytest.mark.parametrize(
    "overrides",
    [[], [*META, "model=meta/protonet"]],
    ids=["multitask-mlp", "meta-protonet-conv4"],
)
def test_stop_after_the_first_evaluation_then_resume_is_exact_on_cuda(tmp_path, overrides):
    steps = ["trainer.steps=12", "trainer.eval_every=4"]
    full = train(compose(gpu_run(tmp_path / "full", *overrides, *steps)))
    train(
        compose(gpu_run(tmp_path / "part", *overrides, "trainer.steps=4", "trainer.eval_every=4"))
    )
    resumed = train(compose(gpu_run(tmp_path / "part", *overrides, *steps)))
    assert resumed["resumed_from"] == 4
    for key in ("step", "best_step", "best_val", "val", "test", "best_test"):
        assert resumed[key] == full[key], key

    def rows(path: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(path)]

    assert rows(tmp_path / "part/metrics.jsonl") == rows(tmp_path / "full/metrics.jsonl")


# ------------------------------------------------------------------ sweeps over GPUs


@pytest.mark.skipif(
    torch.cuda.device_count() < 2,
    reason=f"needs 2 GPUs for the round robin; this machine has {torch.cuda.device_count()}",
)
def test_sweep_with_device_auto_puts_jobs_on_cuda_0_and_cuda_1(tmp_path):
    mtl(
        "train", "-m", "seed=0,1", *tiny_cli("device=auto"),
        cwd=tmp_path, timeout=600, check=True,
    )  # fmt: skip
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
    devices = [json.loads((sweep / str(i) / "metrics.json").read_text())["device"] for i in (0, 1)]
    assert devices == ["cuda:0", "cuda:1"]


# ------------------------------------------------------------------ precision and compilation


@pytest.mark.parametrize("precision", ["32", "bf16", "16-mixed"])
def test_each_precision_trains_a_gradient_method_to_finite_metrics(tmp_path, precision):
    summary = train(compose(gpu_run(tmp_path, "loss=pcgrad", f"trainer.precision={precision}")))
    assert summary["status"] == "finished" and summary["precision"] == precision
    assert_finite(summary["val"])
    assert_finite(summary["test"])
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert all(math.isfinite(r["train/loss"]) for r in rows)


def test_compile_true_trains_compiled(tmp_path):
    summary = train(compose(gpu_run(tmp_path, "trainer.compile=true")))
    assert summary["status"] == "finished" and summary["compiled"] is True
    assert_finite(summary["val"])
    assert_finite(summary["test"])
