"""Statistics of conflict between task gradients (the rows of G)."""

from __future__ import annotations

import torch
from torch import Tensor


def gradient_conflict_stats(G: Tensor, tasks: list[int] | None = None) -> dict[str, float]:
    """Pairwise cosine statistics of the task gradients G [T, P] (rows with zero norm: cosine 0).

    Keys: `grad_cos/mean`, `grad_cos/min`, `grad_conflict_fraction` (pairs with cosine < 0),
    `grad_norm_ratio` (max / min row norm; inf when a row is zero), `grad_norm/<i>` and
    `cos/<i>-<j>` for every pair i < j; i, j are the task indices `tasks` (default 0..T-1).
    """
    num = G.shape[0]
    tasks = list(range(num)) if tasks is None else list(tasks)
    if len(tasks) != num:
        raise ValueError(f"tasks: {len(tasks)} task indices for {num} gradient rows")
    gram = (G @ G.T).double().cpu()
    norms = gram.diagonal().clamp_min(0).sqrt()
    stats = {f"grad_norm/{t}": float(n) for t, n in zip(tasks, norms.tolist(), strict=True)}
    smallest = float(norms.min())
    stats["grad_norm_ratio"] = float(norms.max()) / smallest if smallest > 0 else float("inf")
    if num < 2:
        return stats
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    cos = gram / torch.outer(safe, safe)
    cos = torch.where(torch.outer(norms > 0, norms > 0), cos, torch.zeros_like(cos))
    i, j = torch.triu_indices(num, num, offset=1)
    pairs = cos[i, j].clamp(-1.0, 1.0)
    stats["grad_cos/mean"] = float(pairs.mean())
    stats["grad_cos/min"] = float(pairs.min())
    stats["grad_conflict_fraction"] = float((pairs < 0).double().mean())
    for a, b, value in zip(i.tolist(), j.tolist(), pairs.tolist(), strict=True):
        stats[f"cos/{tasks[a]}-{tasks[b]}"] = float(value)
    return stats
