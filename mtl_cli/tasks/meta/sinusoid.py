"""Synthetic meta-learning (no download): sinusoid regression tasks."""

from __future__ import annotations

from collections.abc import Sequence

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MetaData


def _pair(key: str, values: Sequence[float], strict: bool) -> tuple[float, float]:
    low, high = (float(v) for v in values) if len(values) == 2 else (1.0, 0.0)
    if (low >= high) if strict else (low > high):
        raise UserError(f"task.{key}: expected [low, high] with low < high, got {list(values)}")
    return low, high


def sinusoid_tasks(
    kind: str,
    shots: int,
    queries: int,
    amplitude: Sequence[float],
    phase: Sequence[float],
    x_range: Sequence[float],
    meta_batch_size: int,
    eval_episodes: int,
    eval_seed: int,
    eval_steps: Sequence[int],
    data: dict,
    eval_shots: int | None = None,
    eval_queries: int | None = None,
) -> MetaData:
    """Finn et al. 2017's sinusoid regression: every task is a new amplitude and phase.

    Meta-val/test tasks have `eval_shots` support and `eval_queries` query points (None = the
    training K and queries; Finn et al. 2017 Fig. 2 evaluate K = 5 and 10)."""
    from mtl_cli.data.sinusoid import SinusoidTasks

    if any(int(k) < 0 for k in eval_steps):
        raise UserError(f"task.eval_steps: adaptation steps must be >= 0, got {list(eval_steps)}")
    ranges = {
        "amp": _pair("amplitude", amplitude, strict=False),
        "phase": _pair("phase", phase, strict=False),
        "x_range": _pair("x_range", x_range, strict=True),
    }
    tasks = SinusoidTasks(int(shots), int(queries), **ranges)
    held_out = SinusoidTasks(
        int(shots if eval_shots is None else eval_shots),
        int(queries if eval_queries is None else eval_queries),
        **ranges,
    )
    return MetaData(
        kind="regression",
        input_shape=(1,),
        ways=1,
        samplers={"train": tasks, "val": held_out, "test": held_out},
        meta_batch_size=int(meta_batch_size),
        eval_episodes=int(eval_episodes),
        eval_seed=int(eval_seed),
        eval_steps=[int(k) for k in eval_steps],
    )
