"""`trainer.precision`: autocast for the forward passes and a gradient scaler for float16.

- `32`: float32, nothing changes (no autocast, no scaler);
- `bf16`: `torch.autocast(<device type>, dtype=torch.bfloat16)` on CPU and CUDA, no scaler
  (bfloat16 has float32's exponent range, so gradients do not underflow);
- `16-mixed`: CUDA autocast to float16 with `torch.amp.GradScaler("cuda")`.

Autocast covers the forward passes and loss computation of training (`family.train_losses`) and
of evaluation (`family.evaluate`); the backward, the weighting methods' solvers and the optimizer
run outside it. With a scaler the weighting method backpropagates `loss_scale * (...)` itself
(`Weighting.loss_scale`, mtl_cli/loss/base.py), so gradient methods combine unscaled task
gradients; the trainer then unscales the `.grad`s, clips, and lets the scaler step (or skip an
overflow step) and update its scale. The scaler's state is part of the run's checkpoint.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from mtl_cli.config import precision_error
from mtl_cli.errors import UserError

PRECISIONS = ("32", "bf16", "16-mixed")


class Precision:
    """The run's numeric precision on its device: autocast context, gradient scaler, its state."""

    def __init__(self, mode: Any, device: torch.device) -> None:
        self.mode = str(mode)
        self.device = torch.device(device)
        problem = precision_error(self.mode, self.device.type)
        if problem:
            raise UserError(problem)
        #: float16 needs loss scaling: a GradScaler (16-mixed only; "cuda", the one device type
        #: the check above lets through; tests that lift the check get torch's CPU scaler)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.mode == "16-mixed" else None

    @classmethod
    def for_evaluation(cls, mode: Any, device: torch.device) -> Precision:
        """The run's precision for `mtl eval` on `device`; float32 where it cannot run there
        (16-mixed off CUDA)."""
        if precision_error(str(mode), torch.device(device).type):
            mode = "32"
        return cls(mode, device)

    def autocast(self) -> AbstractContextManager:
        """Context for forward passes and losses (a no-op for 32)."""
        if self.mode == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.mode == "16-mixed":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return nullcontext()

    @staticmethod
    def float32_losses(losses: torch.Tensor) -> torch.Tensor:
        """Task losses as float32 (criteria already return float32 under autocast; a hand-made
        loss computed in bfloat16/float16 is promoted, so G and the weights stay in float32)."""
        if losses.dtype in (torch.bfloat16, torch.float16):
            return losses.float()
        return losses

    def loss_scale(self) -> float:
        """The factor the step's losses are multiplied by before any backward (1.0 without a
        scaler). Read through `scaler.scale`, which also creates the scaler's scale tensor on the
        device the first time (`unscale_` needs it); `get_scale()` alone would not."""
        if self.scaler is None:
            return 1.0
        return float(self.scaler.scale(torch.ones((), device=self.device)))

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the optimizer's `.grad`s by the scale (before clipping); records overflow."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(), or with a scaler: step unless a `.grad` was not finite, update the
        scale (halved after an overflow, doubled after 2000 clean steps)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None:
            if "scaler" not in state:
                raise KeyError("scaler: the checkpoint has no gradient-scaler state")
            self.scaler.load_state_dict(state["scaler"])
