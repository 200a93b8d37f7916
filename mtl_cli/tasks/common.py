"""Helpers for builders of every family: seeded splits, episode samplers, multi-label options."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtl_cli.errors import UserError

SPLITS = ("train", "val", "test")


def check_fractions(fractions: Sequence[float]) -> list[float]:
    """[train, val, test] fractions: three positive numbers summing to 1."""
    values = [float(f) for f in fractions]
    if len(values) != 3 or min(values) <= 0 or abs(sum(values) - 1.0) > 1e-6:
        raise UserError(
            f"task.split_fractions: expected three positive fractions summing to 1, got {values}"
        )
    return values


def split_indices(n: int, fractions: Sequence[float], seed: int) -> dict[str, np.ndarray]:
    """A seeded partition of range(n) into train/val/test (each non-empty), sorted within a split."""
    if n < 3:
        raise UserError(f"task: {n} items cannot be split into meta-train/val/test")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise UserError(f"task.split_fractions: no item left for meta-train out of {n}")
    cuts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    return {k: np.sort(v) for k, v in cuts.items()}


def meta_samplers(
    images: torch.Tensor,
    classes: dict[str, np.ndarray],
    ways: int,
    shots: int,
    queries: int,
    rotations: bool,
    eval_ways: int | None = None,
    eval_shots: int | None = None,
    eval_queries: int | None = None,
) -> dict:
    """One EpisodeSampler per split over that split's classes (images [C, D, ...]).

    Meta-train draws (ways, shots, queries); meta-val and meta-test draw (eval_ways, eval_shots,
    eval_queries), each None meaning the training value (e.g. train 20-way, test 5-way: Snell et
    al. 2017). Each sampler holds its own contiguous copy of its classes, on the device of
    `images` (the CPU for the task builders, which do not know the run's device): the meta family
    moves each one to the run's device once (`EpisodeSampler.to`), keeping the dtype."""
    from mtl_cli.data.episodes import EpisodeSampler

    samplers = {}
    for split in SPLITS:
        settings = split_settings(split, ways, shots, queries, eval_ways, eval_shots, eval_queries)
        (n_key, n), (k_key, k), (q_key, q) = settings.items()
        count = len(classes[split]) * (4 if rotations else 1)
        if count < n:
            raise UserError(
                f"task.{n_key}: {n} exceeds the {count} classes of the meta-{split} split"
            )
        if k + q > images.shape[1]:
            raise UserError(
                f"task.{k_key} + task.{q_key}: {k} + {q} exceeds the {images.shape[1]} "
                f"examples per class (meta-{split})"
            )
        subset = images[torch.from_numpy(classes[split])]
        try:
            samplers[split] = EpisodeSampler(subset, n, k, q, rotations=rotations)
        except ValueError as exc:
            raise UserError(f"task: {exc}") from None
    return samplers


def split_settings(
    split: str,
    ways: int,
    shots: int,
    queries: int,
    eval_ways: int | None = None,
    eval_shots: int | None = None,
    eval_queries: int | None = None,
) -> dict[str, int]:
    """{key: value} of the (ways, shots, queries) one split's episodes use, keyed by the option
    that sets each: meta-train the training values; meta-val/test the eval_* ones when given."""
    chosen = {}
    for key, value, override in (
        ("ways", ways, eval_ways),
        ("shots", shots, eval_shots),
        ("queries", queries, eval_queries),
    ):
        if split == "train" or override is None:
            chosen[key] = int(value)
        else:
            chosen[f"eval_{key}"] = int(override)
    return chosen


def label_options(pos_weight, threshold) -> dict:
    """Checked multi-label options for the family: pos_weight (null|auto|list), threshold."""
    if pos_weight is not None and pos_weight != "auto" and not isinstance(pos_weight, list | tuple):
        raise UserError(
            f"task.pos_weight: invalid value '{pos_weight}'; allowed: null, auto, [w1, ...]"
        )
    if threshold != "val_f1":
        try:
            value = float(threshold)
        except (TypeError, ValueError):
            value = -1.0
        if not 0.0 < value < 1.0:
            raise UserError(
                f"task.threshold: invalid value '{threshold}'; allowed: a probability in (0, 1) or val_f1"
            )
        threshold = value
    return {"pos_weight": pos_weight, "threshold": threshold}


def check_sizes(**sizes: int) -> None:
    """Dataset sizes must be positive (the schema checks them too; builders may be called directly)."""
    for key, value in sizes.items():
        if int(value) < 1:
            raise UserError(f"task.{key}: {value} is below the minimum 1")


def _slices(sizes: dict[str, int]) -> dict[str, slice]:
    """Consecutive slices of one sample: train, val and test are disjoint draws of one distribution."""
    out, start = {}, 0
    for split, n in sizes.items():
        out[split] = slice(start, start + int(n))
        start += int(n)
    return out
