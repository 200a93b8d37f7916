"""What a task family does for the training loop: build the model, turn a step into task losses, evaluate."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mtl_cli.errors import UserError


class Family:
    """A task family (CS330 lecture 2): how tasks are sampled, how a batch becomes per-task losses."""

    #: the family's name in mtl_cli.families.FAMILIES, where its facts live
    name: str = ""
    #: the kind of its tasks ("classification" | "regression"), set from the data
    kind: str = "classification"

    task_names: list[str]

    @property
    def facts(self):
        from mtl_cli.families import family_facts

        return family_facts(self.name)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Aggregate metric names this family reports (first is the default selection metric)."""
        return self.facts.metrics_of(self.kind)

    @property
    def delta_m_metrics(self) -> tuple[str, ...]:
        """The per-task metrics Δm compares with a single-task baseline (Maninis et al. 2019)."""
        return self.facts.delta_m_metrics_of(self.kind) or self.metrics[:1]

    def build_model(self, model_cfg: Any, backbone_cfg: Any) -> nn.Module:
        """The chosen model for this family's data (multi-task models by default)."""
        return self.instantiate_model(model_cfg, backbone_cfg, task_outputs=self.data.outputs)

    def instantiate_model(self, model_cfg: Any, backbone_cfg: Any, **kwargs: Any) -> nn.Module:
        """`model._target_` with the input shape, a backbone factory and family-specific kwargs."""
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate

        shape = self.data.input_shape
        try:
            return instantiate(
                model_cfg,
                input_shape=shape,
                make_backbone=lambda: instantiate(backbone_cfg, input_shape=shape),
                **kwargs,
            )
        except InstantiationException as exc:
            # a model's or backbone's own check (ValueError naming its key): one line, no traceback
            cause: BaseException = exc
            while cause.__cause__ is not None:
                cause = cause.__cause__
            if isinstance(cause, ValueError):
                raise UserError(str(cause).splitlines()[0]) from None
            raise

    def train_losses(
        self, model: nn.Module, generator: torch.Generator
    ) -> tuple[torch.Tensor, list[int], torch.Tensor | None]:
        """Per-task losses of one training step, the task indices they belong to, and the shared
        representation the task heads consumed (None when there is none)."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Flat metrics on `split`: aggregate keys ("accuracy") and per-task keys ("<task>/accuracy")."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Sampler state (for exact resume)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
