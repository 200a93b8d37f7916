"""The task functions behind `mtl train` and `mtl eval`: build, loop, write. No Hydra entry point here."""

from __future__ import annotations

import logging
import math
import platform
import random
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mtl_cli import __version__
from mtl_cli.checkpoint import load_checkpoint, save_checkpoint
from mtl_cli.checkpoint_compare import config_mismatch, refuse_existing_run, run_identity
from mtl_cli.checkpoint_compare import plain as _plain
from mtl_cli.compiling import ModelCompiler
from mtl_cli.config import validate
from mtl_cli.device import resolve_device
from mtl_cli.early_stopping import NO_PLATEAU, improves, next_plateau, plateau_reached
from mtl_cli.errors import UserError
from mtl_cli.families import family_class
from mtl_cli.io import JsonlWriter, read_json, write_json
from mtl_cli.launch import (
    available_cores,
    hydra_launcher,
    job_threads,
    metric_value,
    objective_name,
)
from mtl_cli.loggers import open_logger
from mtl_cli.optim import build_optimizer, build_scheduler
from mtl_cli.precision import Precision

log = logging.getLogger("mtl_cli")


#: signals that stop a run after the current step with a fresh checkpoint; SIGUSR2 is the one
#: SLURM/submitit send before a time limit or preemption (submitit then requeues the job)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class Interrupted(Exception):
    """A stop signal arrived: a checkpoint was saved; the CLI exits with 128 + signal number.

    `chained` is the handler that was installed for that signal before the run (e.g. submitit's
    checkpoint-and-requeue for SIGUSR2); the CLI calls it once the checkpoint is on disk.
    """

    def __init__(self, signum: int, chained: Any = None) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint saved")
        self.signum = signum
        self.chained = (
            chained if callable(chained) and chained is not signal.default_int_handler else None
        )


@contextmanager
def _stop_on_signals():
    """Turn stop signals into a flag checked after every step (the handler itself does no work).

    Yields the list of received signals and the handlers that were installed before."""
    received: list[int] = []
    if threading_main():
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for s in previous:
            signal.signal(s, lambda signum, frame: received.append(signum))
        try:
            yield received, previous
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    else:
        yield received, {}


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_choices(cfg: DictConfig) -> dict[str, str]:
    """Group choices of this run (task, model, loss, ...), from Hydra when it launched us."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choices = dict(HydraConfig.get().runtime.choices)
        return {k: str(v) for k, v in choices.items() if not k.startswith("hydra") and v}
    except Exception:
        return {
            g: str(cfg[g].get("_target_", "")).rsplit(".", 1)[-1]
            for g in ("task", "model", "backbone", "loss", "optim")
            if cfg.get(g) is not None
        }


def _model_name(cfg: DictConfig) -> str:
    """The model's choice name ('hard_sharing', 'meta/maml'), for messages."""
    name = getattr(OmegaConf.get_type(cfg.model), "name", None)
    return str(name) if isinstance(name, str) else run_choices(cfg).get("model", "model")


def job_index() -> int | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return int(HydraConfig.get().job.num)
    except Exception:
        return None


def prepare_output_dir(path: str) -> Path:
    out = Path(path)
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"paths.output_dir: cannot write to {out} ({exc.strerror})") from None
    return out


def build_family(cfg: DictConfig, device: torch.device):
    """Call the task's data builder (`task._target_`), then wrap it in the family's sampler."""
    from hydra.utils import get_method

    kwargs = {k: _plain(v) for k, v in cfg.task.items() if k not in ("_target_", "family")}
    data = get_method(cfg.task._target_)(**kwargs, data=_plain(cfg.data))
    return family_class(cfg.task.family)(data, cfg.trainer, device)


def build_weighting(cfg: DictConfig, family) -> torch.nn.Module:
    """`loss._target_` with its own settings, then the run's tasks through the `setup` hook."""
    from hydra.utils import instantiate

    from mtl_cli.loss.base import TaskSetup

    method = instantiate(cfg.loss)
    tasks = TaskSetup(tuple(family.task_names), steps_per_epoch=int(cfg.trainer.eval_every))
    return method.setup(tasks)


def versions() -> dict[str, str]:
    import hydra

    return {
        "mtl_cli": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "hydra": hydra.__version__,
    }


def restore_rng(generator: torch.Generator, rng: dict[str, Any]) -> None:
    """Set the run's generator and torch's global RNGs from a checkpoint's `rng` entry, wherever
    the checkpoint was loaded: every RNG state must be a CPU ByteTensor."""
    generator.set_state(rng["generator"].cpu())
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])


class Run:
    """One training run: model, optimizer, weighting and sampler state, with checkpoint/resume."""

    def __init__(self, cfg: DictConfig) -> None:
        validate(cfg)
        self.cfg = cfg
        self.out = prepare_output_dir(cfg.paths.output_dir)
        self.last_path = self.out / "checkpoints" / "last.pt"
        self.best_path = self.out / "checkpoints" / "best.pt"
        refuse_existing_run(self.out, bool(cfg.trainer.resume))
        threads = job_threads(int(cfg.trainer.threads), hydra_launcher(), available_cores())
        if threads:  # trainer.threads, else cores / parallel jobs of the launcher
            torch.set_num_threads(threads)
        self.device = resolve_device(cfg.device, job_index())
        self.precision = Precision(cfg.trainer.precision, self.device)  # before any work
        seed_everything(int(cfg.seed))
        self.family = build_family(cfg, self.device)
        self.model = self.family.build_model(cfg.model, cfg.get("backbone")).to(self.device)
        self.weighting = build_weighting(cfg, self.family).to(self.device)
        self.compiler = ModelCompiler(  # trainer.compile: in place, lazily (docs/runs.md)
            self.model,
            cfg.trainer.get("compile", False),
            str(cfg.trainer.get("compile_mode", "default")),
            _model_name(cfg),
        )
        params = list(self.model.parameters()) + list(self.weighting.parameters())
        self.optimizer = build_optimizer(cfg.optim, params)
        self.scheduler = build_scheduler(cfg.optim, self.optimizer, int(cfg.trainer.steps))
        self.generator = torch.Generator().manual_seed(int(cfg.seed))
        self.identity = run_identity(cfg)
        self.step = 0
        self.best: dict[str, Any] = {"step": None, "value": None, "val": {}}
        self.plateau: dict[str, Any] = dict(NO_PLATEAU)  # trainer.patience (early_stopping)
        # wall clock of the whole run across resumes: perf_counter() - start_wall
        self.start_wall = time.perf_counter()
        select = str(cfg.trainer.select_metric)
        self.select = self.family.metrics[0] if select == "auto" else select
        if self.select.rsplit("/", 1)[-1] not in self.family.metrics:
            raise UserError(
                f"trainer.select_metric: '{select}' is not a metric of this family; "
                f"allowed: auto, {', '.join(self.family.metrics)} (or <task>/<metric>)"
            )
        self.running = torch.zeros(len(self.family.task_names), 2, dtype=torch.float64)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "identity": self.identity,
            "model": self.model.state_dict(),
            "weighting": self.weighting.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "family": self.family.state_dict(),
            "rng": {
                "generator": self.generator.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "best": self.best,
            "plateau": self.plateau,
            "wall_time_s": time.perf_counter() - self.start_wall,
            "running": self.running,
            "precision": self.precision.state_dict(),
        }

    def restore(self, path: Path) -> None:
        # on the CPU: RNG states must be CPU ByteTensors; load_state_dict moves the rest
        state = load_checkpoint(path, map_location="cpu")
        mismatch = config_mismatch(state.get("identity", {}), self.identity)
        if mismatch:
            raise UserError(f"{path}: made with a different config ({mismatch})")
        try:
            self.model.load_state_dict(state["model"])
            self.weighting.load_state_dict(state["weighting"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.family.load_state_dict(state["family"])
            self.precision.load_state_dict(state.get("precision", {}))
        except (RuntimeError, KeyError, ValueError) as exc:
            reason = str(exc).splitlines()[0][:160]
            raise UserError(f"{path}: does not fit this model ({reason})") from None
        restore_rng(self.generator, state["rng"])
        self.step = int(state["step"])
        self.best = state["best"]
        self.plateau = state.get("plateau", dict(NO_PLATEAU))
        self.start_wall = time.perf_counter() - float(state.get("wall_time_s", 0.0))
        self.running = state["running"].cpu()

    def save(self) -> None:
        save_checkpoint(self.last_path, self.state())

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, split: str) -> dict[str, float]:
        self.model.eval()
        try:
            with self.precision.autocast():
                return self.compiler.call(lambda: self.family.evaluate(self.model, split))
        finally:
            self.model.train()

    def is_better(self, value: float) -> bool:
        from mtl_cli.metrics import higher_is_better

        best = self.best["value"]
        return best is None or improves(value, best, higher_is_better(self.select))

    def note_plateau(self, value: float) -> None:
        """One more evaluation of the selected metric for trainer.patience (early_stopping)."""
        from mtl_cli.metrics import higher_is_better

        higher = higher_is_better(self.select)
        min_delta = float(self.cfg.trainer.min_delta)
        self.plateau = next_plateau(self.plateau, value, higher, min_delta)

    def plateaued(self) -> bool:
        return plateau_reached(self.plateau, int(self.cfg.trainer.patience))


def _diagnostics(weighting) -> dict[str, float]:
    """Conflict statistics of the step's task gradients on the shared parameters: the matrix G
    the weighting method left in `last_gradients` (computed once per step, also when the method
    itself needed it)."""
    from mtl_cli.loss.diagnostics import gradient_conflict_stats

    G = weighting.last_gradients
    if G is None or G.shape[0] < 2:
        return {}
    stats = gradient_conflict_stats(G, list(weighting.last_tasks))
    return {f"diag/{k}": float(v) for k, v in stats.items()}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train as the config says, writing metrics.jsonl, metrics.json and checkpoints in the run dir."""
    run = Run(cfg)
    out = run.out
    jsonl = JsonlWriter(out / "metrics.jsonl")
    run.logger = open_logger(cfg, out)
    resumed_from = None
    if run.last_path.exists():
        run.restore(run.last_path)
        resumed_from = run.step
        jsonl.truncate_after(run.step)
        log.info("resuming %s from step %d", out, run.step)
    elif jsonl.path.exists():
        jsonl.path.unlink()
    trainer = cfg.trainer
    steps, eval_every = int(trainer.steps), int(trainer.eval_every)
    names = run.family.task_names
    info = {
        "family": str(cfg.task.family),
        "choices": run_choices(cfg),
        "seed": int(cfg.seed),
        "device": str(run.device),
        "tasks": list(names),
        "num_params": sum(p.numel() for p in run.model.parameters()),
        "data": getattr(run.family.data, "info", {}),
        "threads": torch.get_num_threads(),
        "precision": run.precision.mode,
        "versions": versions(),
    }
    if run.step == 0:
        log.info(
            "%s: %d tasks, %d parameters, device %s -> %s",
            info["family"], len(names), info["num_params"], run.device, out,
        )  # fmt: skip
    from tqdm import tqdm

    bar = tqdm(
        total=steps,
        initial=run.step,
        disable=not (trainer.progress and sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=False,
    )
    clip = float(trainer.grad_clip)
    train_time = 0.0
    steps_here = 0
    status, error = "running", None
    try:
        with _stop_on_signals() as (received, previous):
            tick = time.perf_counter()
            while run.step < steps and not run.plateaued():
                if received:
                    raise Interrupted(received[0], previous.get(received[0]))
                trial = run.compiler.trial(run)  # the first compiled step: state to redo it
                run.optimizer.zero_grad(set_to_none=True)
                try:  # compilation is lazy: a model that cannot be compiled fails here
                    with run.precision.autocast():  # forward and losses only
                        losses, tasks, rep = run.family.train_losses(run.model, run.generator)
                        extra = [  # more independent samples (MoDo, SDMGrad); same tasks
                            run.family.train_losses(run.model, run.generator)[0]
                            for _ in range(run.weighting.samples_per_step - 1)
                        ]
                    losses = run.precision.float32_losses(losses)
                    run.weighting.extra_losses = [run.precision.float32_losses(e) for e in extra]
                    evaluating = (run.step + 1) % eval_every == 0 or run.step + 1 == steps
                    run.weighting.keep_task_gradients = evaluating and trainer.diagnostics
                    run.weighting.loss_scale = run.precision.loss_scale()  # 1.0 without a scaler
                    stats = run.weighting.backward(losses, tasks, run.model, rep)
                except Exception as exc:
                    if not run.compiler.recover(exc, trial, run):  # UserError for compile=true
                        raise
                    continue  # compile=auto: the same step again, eager
                diag = _diagnostics(run.weighting) if run.weighting.keep_task_gradients else {}
                run.precision.unscale_(run.optimizer)  # .grad back from the scaler's space
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip)
                run.precision.step(run.optimizer)  # skipped by the scaler after an overflow
                run.scheduler.step()
                index = torch.as_tensor(tasks)
                run.running[index, 0] += losses.detach().double().cpu()
                run.running[index, 1] += 1
                run.step += 1
                steps_here += 1
                bar.update(1)
                if not torch.isfinite(losses.detach()).all():
                    raise FloatingPointError(f"non-finite task loss at step {run.step}")
                if evaluating:
                    train_time += time.perf_counter() - tick
                    _evaluate_and_log(run, jsonl, stats, diag)
                    run.save()
                    if run.plateaued():
                        log.info(
                            "step %d: val %s has not improved by more than %g for %d "
                            "evaluations: stopping (trainer.patience)",
                            run.step, run.select, float(trainer.min_delta), int(trainer.patience),
                        )  # fmt: skip
                    write_json(out / "metrics.json", _summary(run, info, "running", None, 0, 0))
                    tick = time.perf_counter()
            train_time += time.perf_counter() - tick
        status = "finished"
    except Interrupted as exc:
        run.save()
        status, error = "interrupted", str(exc)
        raise
    except UserError as exc:
        status, error = "failed", str(exc)
        raise
    except Exception as exc:
        status, error = (
            "failed",
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        )
        raise
    finally:
        bar.close()
        wall = time.perf_counter() - run.start_wall  # earlier segments of a resumed run included
        rate = steps_here / train_time if train_time > 0 else 0.0
        if status != "finished":
            write_json(out / "metrics.json", _summary(run, info, status, error, rate, wall))
            run.logger.close()  # after metrics.json: trackers upload it
    summary = _summary(run, info, "finished", None, rate, wall, final=True)
    summary["resumed_from"] = resumed_from
    summary["optimized_metric"] = objective_name(cfg.optimized_metric, run.select)
    try:  # the value a sweeper (optuna) optimises; a bad name must not lose the run's summary
        summary["optimized_value"] = metric_value(summary, summary["optimized_metric"])
    except UserError as exc:
        summary["optimized_value"] = None
        log.error("%s", exc)
    write_json(out / "metrics.json", summary)
    run.logger.close()  # after the final metrics.json: trackers upload it
    log.info("done: %s", _headline(summary))
    return summary


def _evaluate_and_log(run: Run, jsonl: JsonlWriter, stats: dict, diag: dict) -> None:
    names = run.family.task_names
    val = run.evaluate("val")
    counts = run.running[:, 1].clamp(min=1)
    train_loss = (run.running[:, 0] / counts).tolist()
    seen = run.running[:, 1] > 0
    row: dict[str, Any] = {
        "step": run.step,
        "epoch": run.step / max(run.cfg.trainer.eval_every, 1),
        "split": "val",
        "lr": run.optimizer.param_groups[0]["lr"],
        "time": time.time(),
        "train/loss": float(
            sum(v for v, s in zip(train_loss, seen, strict=True) if s) / max(int(seen.sum()), 1)
        ),
    }
    row.update({f"train/{n}/loss": v for n, v, s in zip(names, train_loss, seen, strict=True) if s})
    row.update({f"val/{k}": v for k, v in val.items()})
    row.update({f"loss/{_named(k, names)}": float(v) for k, v in stats.items()})
    row.update({_named(k, names): v for k, v in diag.items()})
    jsonl.write(row)
    run.logger.log(row)
    run.running.zero_()
    value = val.get(run.select, math.nan)
    run.note_plateau(value)
    if math.isfinite(value) and run.is_better(value):
        run.best = {"step": run.step, "value": value, "val": val}
        save_checkpoint(
            run.best_path,
            {"step": run.step, "identity": run.identity, "model": run.model.state_dict()},
        )
    log.info(
        "step %d  val %s=%.4f  train loss %.4f", run.step, run.select, value, row["train/loss"]
    )


def _named(key: str, names: list[str]) -> str:
    """'weight/1' -> 'weight/<task 1>', 'diag/cos/0-2' -> 'diag/cos/<task 0>-<task 2>'."""
    head, _, last = key.rpartition("/")
    parts = last.split("-")
    if head and all(p.isdigit() and int(p) < len(names) for p in parts):
        return f"{head}/{'-'.join(names[int(p)] for p in parts)}"
    return key


def _summary(
    run: Run, info: dict, status: str, error, rate: float, wall: float, final=False
) -> dict:
    summary: dict[str, Any] = {"status": status, "error": error, **info, "step": run.step}
    summary["best_step"] = run.best["step"]
    summary["best_val"] = run.best["val"]
    if final:
        # why training ended: all trainer.steps, or a val plateau (trainer.patience)
        summary["stopped"] = "plateau" if run.plateaued() else "steps"
        summary["val"] = run.evaluate("val")
        summary["test"] = run.evaluate("test")
        summary["best_test"] = _best_test(run)
        baseline = run.cfg.get("baseline_run")
        if baseline:
            summary["delta_m"] = _delta_m_against(
                Path(baseline), summary["test"], run.family.delta_m_metrics
            )
    summary["compiled"] = run.compiler.compiled  # false: eager, or fell back (trainer.compile=auto)
    summary["steps_per_s"] = rate
    summary["wall_time_s"] = wall
    return summary


def _best_test(run: Run) -> dict[str, float]:
    if not run.best_path.exists():
        return {}
    current = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.model.load_state_dict(load_checkpoint(run.best_path, run.device)["model"])
    try:
        return run.evaluate("test")
    finally:
        run.model.load_state_dict(current)


def _delta_m_against(baseline_dir: Path, test: dict[str, float], metrics: tuple[str, ...]) -> float:
    from mtl_cli.metrics import delta_m, higher_is_better

    path = baseline_dir / "metrics.json"
    if not path.is_file():
        raise UserError(f"baseline_run: {baseline_dir} has no metrics.json (not a finished run)")
    base = read_json(path).get("test", {})
    ours = {k: v for k, v in test.items() if "/" in k and k.rsplit("/", 1)[1] in metrics}
    common = {k: base[k] for k in ours if k in base}
    if not common:
        raise UserError(
            f"baseline_run: {baseline_dir} has no per-task {' or '.join(metrics)} for these tasks"
        )
    zero = sorted(k for k, v in common.items() if v == 0)
    if zero:  # a relative change from 0 is undefined (a weak baseline: e.g. no pixel within 11.25°)
        log.warning("delta_m: left out %s (0 in the baseline run)", ", ".join(zero))
        common = {k: v for k, v in common.items() if v != 0}
    if not common:
        raise UserError(f"baseline_run: every metric of {baseline_dir} is 0; Δm is undefined")
    return delta_m({k: ours[k] for k in common}, common, higher_is_better)


def _headline(summary: dict) -> str:
    test = summary.get("test", {})
    parts = [f"test {k}={v:.4f}" for k, v in test.items() if "/" not in k]
    return ", ".join(parts) + f"  ({summary['steps_per_s']:.1f} steps/s)"


# ---------------------------------------------------------------------- mtl eval


def evaluate(
    run_dir: str | Path,
    split: str = "test",
    checkpoint: str = "best",
    device: str = "auto",
    overrides: dict[str, Any] | None = None,
) -> dict:
    """Rebuild a finished run from its saved config, evaluate a checkpoint, write eval_metrics.json
    (with evaluation-side `overrides`, e.g. {"task.eval_ways": 5}: eval_metrics.<overrides>.json)."""
    from mtl_cli import eval_settings
    from mtl_cli.finished_run import load_finished_run

    if split not in ("train", "val", "test"):
        raise UserError(f"split: invalid value '{split}'; allowed: train, val, test")
    overrides = dict(overrides or {})
    run = load_finished_run(
        run_dir, checkpoint, device, adjust=lambda cfg: eval_settings.apply(cfg, overrides)
    )
    cfg, family, model, dev = run.cfg, run.family, run.model, run.device
    # the run's precision (float32 where it cannot run on this device: 16-mixed off CUDA)
    precision = Precision.for_evaluation(cfg.trainer.get("precision", "32"), dev)
    with precision.autocast():
        metrics = family.evaluate(model, split)
    result = {
        "split": split,
        "checkpoint": checkpoint,
        "step": int(run.state["step"]),
        "device": str(dev),
        "precision": precision.mode,
        **({"overrides": overrides} if overrides else {}),
        "metrics": metrics,
    }
    write_json(Path(run_dir) / eval_settings.result_name(overrides), result)
    return result
