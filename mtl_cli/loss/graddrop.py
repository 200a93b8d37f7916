"""GradDrop: keep, element by element, only the gradient components of one randomly chosen sign."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtl_cli.loss.base import GradientWeighting, restore_generator, seeded_generator
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class GradDrop(GradientWeighting):
    """Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov 2020, "Just pick a sign: optimizing
    deep multitask models with gradient sign dropout" (Algorithm 1).

    Per element of the shared tensor: G_i = sgn(A) * grad_A L_i summed over the batch, the
    positive sign purity P = 1/2 (1 + sum_i G_i / sum_i |G_i|) and U ~ Uniform[0, 1);
    M_i = 1[U < P] 1[G_i > 0] + 1[U >= P] 1[G_i < 0] (only the positive components survive with
    probability P, else only the negative ones), and the shared tensor receives
    sum_i (leak + (1 - leak) M_i) * grad L_i. `leak` is the paper's leak l_i, one value for every
    task (0: full sign dropout, 1: the plain sum). The purity's monotone map f is the identity.

    With `rep_grad=true` this is the paper's GradDrop layer: A is the shared representation z
    (first dimension: the batch), the mask is drawn per feature and shared by the batch. With
    `rep_grad=false` (the default, the only choice with per-task batches) the same rule acts on
    each shared parameter's gradient: no batch dimension and no activation sign (sgn(A) = 1).
    LibMTL supports only `rep_grad=true`. Elementwise, so it overrides `_aggregate` (not weights
    on G); the logged weights are ones, plus `graddrop/sign_purity`, the mean |2P - 1| (1: every
    element's task gradients agree in sign). U comes from the method's own generator (seeded with
    `seed`, None: the run's seed), which is checkpointed.
    """

    def __init__(
        self,
        leak: float = schema.GradDrop.leak,
        seed: int | None = schema.GradDrop.seed,
        rep_grad: bool = schema.GradDrop.rep_grad,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
        check_settings(schema.GradDrop, leak=leak, seed=seed)
        self.leak = float(leak)
        self.generator = seeded_generator(seed)
        self._activation: Tensor | None = None
        self.last_sign_purity: float | None = None

    def backward(
        self,
        losses: Tensor,
        tasks: Sequence[int],
        model: MultiTaskModel,
        representation: Tensor | None = None,
    ) -> dict[str, float]:
        self.last_sign_purity = None
        self._activation = (
            representation.detach() if self.rep_grad and representation is not None else None
        )
        try:
            return super().backward(losses, tasks, model, representation)
        finally:
            self._activation = None

    def _aggregate(
        self, G: Tensor, losses: Tensor, index: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        direction, purity = graddrop_direction(G, self.leak, self.generator, self._activation)
        self.last_sign_purity = float((2.0 * purity - 1.0).abs().mean()) if purity.numel() else 1.0
        return self.finalize(direction), torch.ones(G.shape[0], dtype=G.dtype, device=G.device)

    def solver_diagnostics(self) -> dict[str, float]:
        return (
            {} if self.last_sign_purity is None else {"graddrop/sign_purity": self.last_sign_purity}
        )

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])


def sign_purity(signed: Tensor) -> Tensor:
    """P = 1/2 (1 + sum_i G_i / sum_i |G_i|) over the first dimension (1/2 where all G_i = 0)."""
    total, mass = signed.sum(dim=0), signed.abs().sum(dim=0)
    ratio = torch.where(mass > 0, total / torch.where(mass > 0, mass, 1.0), 0.0)
    return 0.5 * (1.0 + ratio)


def graddrop_direction(
    G: Tensor,
    leak: float,
    generator: torch.Generator,
    activation: Tensor | None = None,
    uniform: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """GradDrop's combined gradient [P] of the task gradients G [T, P] and the purity P.

    `activation`: the shared tensor A (first dimension the batch) whose gradients G holds; then
    G_i = sum over the batch of sgn(A) * grad_A L_i and the mask is shared by the batch. Without
    it each column of G is one element. `uniform`: U (shape of the purity) instead of a draw.
    """
    if activation is None:
        grads, signed = G, G
    else:
        grads = G.reshape(G.shape[0], *activation.shape)
        signed = (grads * activation.sign().to(G.dtype)).sum(dim=1)
    dtype = torch.promote_types(G.dtype, torch.float32)  # U < 1 must survive the cast
    purity = sign_purity(signed.to(dtype))
    if uniform is None:
        uniform = torch.rand(purity.shape, generator=generator, dtype=dtype)
    uniform = uniform.to(device=G.device, dtype=dtype)
    keep = (uniform < purity) & (signed > 0) | (uniform >= purity) & (signed < 0)
    factor = leak + (1.0 - leak) * keep.to(G.dtype)
    if activation is not None:
        factor = factor.unsqueeze(1)  # the same mask for every example of the batch
    return (factor * grads).sum(dim=0).reshape(-1), purity
