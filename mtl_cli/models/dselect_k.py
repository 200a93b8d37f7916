"""DSelect-k: shared experts, a differentiable sparse gate and a tower per task
(Hazimeh et al. 2021)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mtl_cli.models.backbones import (
    Backbone,
    as_int_list,
    as_shape,
    check_task_outputs,
    make_head,
    require_vector_backbone,
)
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.models.cgc import mix
from mtl_cli.schemas import model as schema
from mtl_cli.schemas.checks import check_settings

#: inside the entropy's log, as in the official code
EPSILON = 1e-6


def smooth_step(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Smooth-step (Hazimeh et al. 2020, 2021): 0 for t <= -gamma/2, 1 for t >= gamma/2, and
    -2 t^3 / gamma^3 + 3 t / (2 gamma) + 1/2 in between (continuously differentiable; the
    derivative is 0 outside [-gamma/2, gamma/2])."""
    cubic = -2.0 / gamma**3 * t**3 + 3.0 / (2.0 * gamma) * t + 0.5
    return torch.where(
        t <= -gamma / 2,
        torch.zeros_like(t),
        torch.where(t >= gamma / 2, torch.ones_like(t), cubic),
    )


def binary_codes(num_experts: int) -> torch.Tensor:
    """[num_experts, m] bool, row e = e written in m = ceil(log2 num_experts) bits, most
    significant first (the official code's np.binary_repr)."""
    m = math.ceil(math.log2(num_experts))
    return torch.tensor(
        [[(e >> (m - 1 - j)) & 1 == 1 for j in range(m)] for e in range(num_experts)],
        dtype=torch.bool,
    ).reshape(num_experts, m)


class _AddToLoss(torch.autograd.Function):
    """Identity on `value` whose backward also sends gradient 1 to `term`: every backward through
    `value` that needs the parameters behind `term` differentiates (its loss + term), i.e. `term`
    is added to the loss once per backward, like a Keras `add_loss`."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, term: torch.Tensor) -> torch.Tensor:
        ctx.term_dtype, ctx.term_device = term.dtype, term.device
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad, torch.ones((), dtype=ctx.term_dtype, device=ctx.term_device)


class DSelectKGate(nn.Module):
    """One task's DSelect-k gate over `num_experts` experts (Hazimeh et al. 2021).

    k single-expert selectors; selector i has m = ceil(log2 n) logits z_i and chooses expert e
    with weight r_e(z_i) = prod_j [S(z_ij) if bit j of e is 1 else 1 - S(z_ij)] (S the smooth-step
    of width gamma; sum_e r_e = 1 when n is a power of 2). The expert weights are
    a = sum_i softmax(w)_i r(z_i): at most k experts get weight once the z saturate.

    gating `static`: z [k, m] and w [k] are parameters (task-only routing); `per_example`: they
    are linear maps of the flattened input. Initialisation as the official code: z ~ U(-gamma/100,
    gamma/100), w ~ U(-0.05, 0.05) (weights and biases alike).

    Regularisation (`regularization`, added to the loss in training, see DSelectK):
    entropy_reg * sum_i H(r(z_i)) with H(p) = -sum_e p_e log(p_e + 1e-6), plus, when n is not a
    power of 2, sum_i 1 / sum_e r_e(z_i) so that the unreachable codes cannot take all the weight.
    Per example, both are summed over the batch (as the official code).
    """

    def __init__(
        self,
        num_experts: int,
        k: int,
        gamma: float,
        entropy_reg: float,
        gating: str,
        input_features: int,
    ) -> None:
        super().__init__()
        self.num_experts, self.k, self.gamma = num_experts, k, float(gamma)
        self.entropy_reg, self.gating = float(entropy_reg), gating
        #: else static (the schema allows these two values)
        self.per_example = gating == "per_example"
        self.register_buffer("codes", binary_codes(num_experts), persistent=False)
        self.num_binary = self.codes.shape[1]
        self.power_of_2 = num_experts == 2**self.num_binary
        z_bound = self.gamma / 100
        if not self.per_example:
            self.z_logits = nn.Parameter(
                torch.empty(k, self.num_binary).uniform_(-z_bound, z_bound)
            )
            self.w_logits = nn.Parameter(torch.empty(k).uniform_(-0.05, 0.05))
        else:
            self.z_layer = nn.Linear(input_features, k * self.num_binary)
            self.w_layer = nn.Linear(input_features, k)
            with torch.no_grad():
                for p in self.z_layer.parameters():
                    p.uniform_(-z_bound, z_bound)
                for p in self.w_layer.parameters():
                    p.uniform_(-0.05, 0.05)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Selector logits z [k, m] and selector-weight logits w [k] (static), or [B, k, m] and
        [B, k] (per example)."""
        if not self.per_example:
            return self.z_logits, self.w_logits
        h = x.flatten(1)
        return self.z_layer(h).view(-1, self.k, self.num_binary), self.w_layer(h)

    def selector_outputs(self, z: torch.Tensor) -> torch.Tensor:
        """r(z): [..., k, m] logits -> [..., k, num_experts] single-expert selections."""
        s = smooth_step(z.float(), self.gamma).unsqueeze(-2)  # [..., k, 1, m]
        return torch.where(self.codes, s, 1 - s).prod(-1)

    def regularization(self, r: torch.Tensor) -> torch.Tensor:
        """entropy_reg * entropy of every selector, + the non-power-of-2 term (a scalar)."""
        term = self.entropy_reg * -(r * torch.log(r + EPSILON)).sum()
        if not self.power_of_2:
            term = term + (1.0 / r.sum(-1)).sum()
        return term

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expert weights [B, num_experts]; in training (with autograd on) the regularisation
        rides along and enters the gradient of every backward through them."""
        z, w = self.logits(x)
        r = self.selector_outputs(z)
        weights = (torch.softmax(w.float(), dim=-1).unsqueeze(-1) * r).sum(-2)
        if weights.dim() == 1:
            weights = weights.expand(x.shape[0], -1)
        if self.training and torch.is_grad_enabled() and (self.entropy_reg or not self.power_of_2):
            weights = _AddToLoss.apply(weights, self.regularization(r))
        return weights


class DSelectK(MultiTaskModel):
    """DSelect-k (Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder, Hong & Chi 2021,
    "DSelect-k: Differentiable Selection in the Mixture of Experts with Applications to Multi-Task
    Learning", NeurIPS).

    `num_experts` shared experts (each one backbone), one DSelect-k gate per task (DSelectKGate:
    k binary-encoded selectors through the smooth-step of width `gamma`, softmax-weighted), one
    tower per task: y_t = tower_t(sum_e a_t(x)_e expert_e(x)). `forward_all` runs the experts once;
    `gate_weights(x, t)` returns a_t [B, num_experts].

    The regulariser (entropy_reg times the selectors' entropy, plus the official code's term for a
    number of experts that is not a power of 2) reaches the training loss without any hook in the
    loop: in training the gate's output carries it through an identity autograd function whose
    backward gives the term gradient 1, so each backward that differentiates the gate's parameters
    (the weighting methods' one backward of the task-specific parameters, or of the weighted sum)
    differentiates task loss + term, unweighted by the method's task weights, as the official Keras
    `add_loss` adds it to the total loss. The term only touches task t's gate, so the partition
    holds. It is not part of the logged task losses.

    Shared: the experts. Task-specific: gates and towers. Last shared layer: each expert's last
    Linear/Conv2d.

    Defaults: gamma 1 and the initialisation from the official code (google-research
    dselect_k_moe); entropy_reg 1e-6 (the official EntropyRegularizer's default parameter, also
    LibMTL's; the official gate applies none unless given one); 4 experts, k = 2 (the official
    README's example: select 2 of 4); gating static (the official layer's task-only routing; LibMTL
    routes per example); towers [64] as mtl_cli's MMoE.

    Deviations: with trainer.precision=16-mixed the term's gradient is not multiplied by the
    gradient scaler's scale (the identity function cannot know it), so its effect is divided by
    the scale; the official schedule_fn (a regularisation parameter that varies with the step) is
    a constant here.
    """

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        num_experts: int = schema.DSelectKModel.num_experts,
        k: int = schema.DSelectKModel.k,
        gamma: float = schema.DSelectKModel.gamma,
        entropy_reg: float = schema.DSelectKModel.entropy_reg,
        gating: str = schema.DSelectKModel.gating,
        tower_hidden: Sequence[int] = (64,),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        num_experts, k, gamma, entropy_reg = (
            int(num_experts),
            int(k),
            float(gamma),
            float(entropy_reg),
        )
        check_settings(
            schema.DSelectKModel,
            num_experts=num_experts,
            k=k,
            gamma=gamma,
            entropy_reg=entropy_reg,
            gating=gating,
        )
        if k > num_experts:
            raise ValueError(
                f"model.k: {k} selectors for {num_experts} experts; need k <= num_experts"
            )
        tower_hidden = as_int_list(tower_hidden, "model.tower_hidden")
        input_features = math.prod(as_shape(input_shape, "model=dselect_k"))
        self.experts = nn.ModuleList([make_backbone() for _ in range(num_experts)])
        require_vector_backbone(self.experts[0], self)
        self.gates = nn.ModuleList(
            [
                DSelectKGate(num_experts, k, gamma, entropy_reg, gating, input_features)
                for _ in self.task_outputs
            ]
        )
        self.towers = nn.ModuleList(
            [make_head(self.experts[0].out_features, tower_hidden, n) for n in self.task_outputs]
        )

    def expert_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert on x: [B, num_experts, expert_size]."""
        return torch.stack([expert(x) for expert in self.experts], dim=1)

    def gate_weights(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Task `task`'s expert weights [B, num_experts] (rows sum to 1 when num_experts is a
        power of 2)."""
        return self.gates[task](x)

    def _tower(self, experts: torch.Tensor, x: torch.Tensor, task: int) -> torch.Tensor:
        weights = self.gate_weights(x, task).to(experts.dtype)
        return self.towers[task](mix(weights, experts))

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Experts, task `task`'s gate and tower."""
        return self._tower(self.expert_outputs(x), x, task)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Experts once, then every task's gate and tower."""
        experts = self.expert_outputs(x)
        return [self._tower(experts, x, t) for t in range(self.num_tasks)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every expert parameter."""
        return list(self.experts.parameters())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of each expert's last Linear/Conv2d layer."""
        return [p for expert in self.experts for p in expert.last_layer_parameters()]
