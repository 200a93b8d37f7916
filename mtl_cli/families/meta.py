"""Meta-learning: sample tasks (episodes) with D_tr (support) and D_test (query); learn to adapt.

Evaluation uses `eval_episodes` fixed episodes per split (fixed seeds) and reports the mean with a
95% normal confidence interval, 1.96·std/√n, as in the few-shot literature. Meta-val/test episodes
have their split sampler's (ways, shots, queries): `task.eval_ways` etc., the training ones when
null.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from mtl_cli.families.base import Family
from mtl_cli.families.task_data import MetaData

_SPLIT_SEED_OFFSET = {"train": 0, "val": 1, "test": 2}


class MetaFamily(Family):
    """Each step: `meta_batch_size` episodes; the learner predicts each query set from its support."""

    name = "meta"

    def __init__(self, data: MetaData, trainer: Any, device: torch.device) -> None:
        self.data = data
        self.device = device
        self.kind = data.kind
        self.classification = data.kind == "classification"
        self.task_names = ["episodes"]  # one meta-objective: the mean query loss over episodes
        # Episodes are gathered on the run's device: an image sampler's class-indexed tensor is
        # moved there once (uint8 stays uint8: 4x less memory; the float conversion happens on
        # the device, per episode), and each meta-batch only sends its small index arrays. The
        # random draws stay on the CPU with the run's generator, whose state the checkpoint
        # holds (exact resume). Samplers that generate their data (sinusoids) have no `to`: they
        # draw on the CPU from that generator and `_prepare` moves the few floats in one pinned,
        # non-blocking copy (drawing them on the GPU would need a CUDA generator in checkpoints,
        # and the same seed would give other tasks on CPU and GPU).
        self.samplers = {
            split: sampler.to(device) if hasattr(sampler, "to") else sampler
            for split, sampler in data.samplers.items()
        }

    def build_model(self, model_cfg: Any, backbone_cfg: Any) -> nn.Module:
        return self.instantiate_model(
            model_cfg, backbone_cfg, ways=self.data.ways, kind=self.data.kind
        )

    def _episode(self, split: str, batch: int, generator: torch.Generator):
        return self._prepare(self.samplers[split].sample(batch, generator))

    def _prepare(self, episode):
        """(support_x, support_y, query_x, query_y) on the device, images as floats in [0, 1].

        Image episodes arrive on the device already (no copy here); generated ones (sinusoids)
        are moved in one packed copy (`Episode.to`)."""
        sx, sy, qx, qy = episode.to(self.device).tensors()
        if sx.dtype == torch.uint8:  # images stay uint8 in memory; scaled on the device
            sx, qx = sx.float().div_(255.0), qx.float().div_(255.0)
        return sx, sy, qx, qy

    def train_losses(self, model, generator):
        sx, sy, qx, qy = self._episode("train", self.data.meta_batch_size, generator)
        loss = model.loss(model(sx, sy, qx), qy)
        return loss.reshape(1), [0], None

    def _episodes(self, split: str):
        from mtl_cli.data.episodes import fixed_episodes

        seed = self.data.eval_seed * 3 + _SPLIT_SEED_OFFSET[split]
        for episode in fixed_episodes(
            self.samplers[split], self.data.eval_episodes, seed, self.data.meta_batch_size
        ):
            yield self._prepare(episode)

    @torch.no_grad()
    def evaluate(self, model, split):
        per_episode: dict[str, list[torch.Tensor]] = {}
        steps = [None, *self.data.eval_steps] if hasattr(model, "inner_steps") else [None]
        ways = getattr(self.samplers[split], "ways", self.data.ways)  # task.eval_ways (val/test)
        other_ways = self.classification and ways != self.data.ways
        with model.episode_ways(ways) if other_ways else nullcontext():
            for episode in self._episodes(split):
                self._evaluate_episodes(model, episode, steps, ways, per_episode)
        return self._summarise(per_episode)

    def _evaluate_episodes(self, model, episode, steps, ways: int, per_episode: dict) -> None:
        """Append each episode's query metrics (after each step count in `steps`) to per_episode."""
        sx, sy, qx, qy = episode
        for k in steps:
            pred = model(sx, sy, qx) if k is None else model(sx, sy, qx, inner_steps=k)
            if self.classification and pred.shape[-1] != ways:  # config checks refuse this first
                raise ValueError(
                    f"task.eval_ways: {type(model).__name__} gave {pred.shape[-1]} logits for "
                    f"{ways}-way episodes (its output layer has task.ways units)"
                )
            suffix = "" if k is None else f"@{k}"
            if self.classification:
                loss = (
                    torch.nn.functional.cross_entropy(
                        pred.flatten(0, 1), qy.flatten(), reduction="none"
                    )
                    .view(qy.shape)
                    .mean(1)
                )
                acc = (pred.argmax(-1) == qy).float().mean(1)
                per_episode.setdefault(f"accuracy{suffix}", []).append(acc)
                per_episode.setdefault(f"loss{suffix}", []).append(loss)
            else:
                err = ((pred - qy) ** 2).mean(dim=(1, 2))
                per_episode.setdefault(f"mse{suffix}", []).append(err)

    @staticmethod
    def _summarise(per_episode: dict[str, list[torch.Tensor]]) -> dict[str, float]:
        """Mean over episodes and its 95% normal half width (`<metric>_ci95`) per metric."""
        from mtl_cli.metrics import mean_ci

        out: dict[str, float] = {}
        for name, chunks in per_episode.items():
            values = torch.cat(chunks).double().cpu().numpy()
            if not np.isfinite(values).all():  # a diverging adaptation: report it, don't crash
                out[name] = out[f"{name}_ci95"] = float("nan")
                continue
            mean, half, n = mean_ci(values, method="normal")
            out[name] = float(mean)
            out[f"{name}_ci95"] = float(half) if n > 1 else 0.0
        return out
