"""Schemas of the `model` group: multi-task sharing architectures (built with task_outputs,
input_shape and make_backbone at run time)."""

from dataclasses import dataclass, field
from typing import Any, ClassVar

FAMILIES = ("multitask", "multilabel")


@dataclass
class IndependentModel:
    """Single-task baseline: a separate backbone and head per task (Caruana 1997)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "independent"
    families: ClassVar[tuple[str, ...]] = FAMILIES + ("dense",)

    _target_: str = "mtl_cli.models.independent.Independent"
    head_hidden: list[int] = field(default_factory=list)  # hidden sizes of each head's MLP


@dataclass
class HardSharingModel:
    """Shared trunk, one head per task (Caruana 1997)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "hard_sharing"
    families: ClassVar[tuple[str, ...]] = FAMILIES + ("dense",)
    #: z = trunk(x) feeds every head: gradient methods may work on z (`loss.rep_grad=true`)
    shared_representation: ClassVar[bool] = True

    _target_: str = "mtl_cli.models.hard_sharing.HardSharing"
    head_hidden: list[int] = field(default_factory=list)


@dataclass
class ConditionedModel:
    """One network fed a task descriptor: concat, additive, multiplicative or FiLM (Perez et al. 2018)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "conditioned"
    families: ClassVar[tuple[str, ...]] = FAMILIES

    _target_: str = "mtl_cli.models.conditioned.Conditioned"
    descriptor: str = field(default="onehot", metadata={"choices": ["onehot", "embedding"]})
    embedding_dim: int = field(default=16, metadata={"min": 1})  # descriptor=embedding
    conditioning: str = field(
        default="film", metadata={"choices": ["concat", "additive", "multiplicative", "film"]}
    )
    layers: Any = "all"  # backbone block indices whose input is conditioned, e.g. [0]; or "all"
    heads: str = field(default="per_task", metadata={"choices": ["per_task", "shared"]})
    head_hidden: list[int] = field(default_factory=list)


@dataclass
class CrossStitchModel:
    """One column per task, mixed by learned cross-stitch units (Misra et al. 2016)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "cross_stitch"
    families: ClassVar[tuple[str, ...]] = FAMILIES + ("dense",)

    _target_: str = "mtl_cli.models.cross_stitch.CrossStitch"
    alpha_self: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})  # initial diagonal
    layers: Any = "all"  # backbone block indices followed by a unit, e.g. [0, 1]; or "all"
    per_channel: bool = False  # one T x T matrix per channel/feature instead of one per unit
    head_hidden: list[int] = field(default_factory=list)


@dataclass
class MMoEModel:
    """Multi-gate mixture of experts: shared experts, a softmax gate and tower per task
    (Ma et al. 2018)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "mmoe"
    families: ClassVar[tuple[str, ...]] = FAMILIES

    _target_: str = "mtl_cli.models.mmoe.MMoE"
    num_experts: int = field(default=4, metadata={"min": 1})  # each expert is one backbone
    tower_hidden: list[int] = field(default_factory=lambda: [64])


@dataclass
class CGCModel:
    """Customized gate control: shared and task-specific experts, a softmax gate and tower per task
    (Tang et al. 2020)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "cgc"
    families: ClassVar[tuple[str, ...]] = FAMILIES

    _target_: str = "mtl_cli.models.cgc.CGC"
    # experts every task's gate mixes, each one backbone (DeepCTR's PLE default 1)
    num_shared_experts: int = field(default=1, metadata={"min": 1})
    # experts of each task, each one backbone (DeepCTR's default 1); 0 = MMoE
    num_task_experts: int = field(default=1, metadata={"min": 0})
    tower_hidden: list[int] = field(default_factory=lambda: [64])


@dataclass
class PLEModel:
    """Progressive layered extraction: stacked CGC levels joined by shared gates
    (Tang et al. 2020)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "ple"
    families: ClassVar[tuple[str, ...]] = FAMILIES

    _target_: str = "mtl_cli.models.ple.PLE"
    # extraction levels; each backbone's blocks are split across them (DeepCTR's default 2)
    num_levels: int = field(default=2, metadata={"min": 1})
    num_shared_experts: int = field(default=1, metadata={"min": 1})  # per level
    num_task_experts: int = field(default=1, metadata={"min": 0})  # per task and level
    tower_hidden: list[int] = field(default_factory=lambda: [64])


@dataclass
class DSelectKModel:
    """DSelect-k: shared experts, a differentiable sparse gate selecting at most k of them per task
    (Hazimeh et al. 2021)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "dselect_k"
    families: ClassVar[tuple[str, ...]] = FAMILIES

    _target_: str = "mtl_cli.models.dselect_k.DSelectK"
    num_experts: int = field(default=4, metadata={"min": 2})  # each expert is one backbone
    k: int = field(default=2, metadata={"min": 1})  # selectors: at most k experts per task
    gamma: float = field(default=1.0, metadata={"min_exclusive": 0.0})  # smooth-step width
    # weight of the selectors' entropy in the loss (official EntropyRegularizer default; 0 = off)
    entropy_reg: float = field(default=1e-6, metadata={"min": 0.0})
    # static: gate parameters per task (task-only routing); per_example: linear in the input
    gating: str = field(default="static", metadata={"choices": ["static", "per_example"]})
    tower_hidden: list[int] = field(default_factory=lambda: [64])


@dataclass
class LTBModel:
    """Learning to branch: a tree of backbone blocks, each child node choosing its parent by an
    annealed Gumbel-softmax over learned branching logits (Guo, Lee & Ulbricht 2020)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "ltb"
    families: ClassVar[tuple[str, ...]] = FAMILIES

    _target_: str = "mtl_cli.models.ltb.LTB"
    # initial Gumbel-softmax temperature (LibMTL's LTB: epochs / 20, i.e. 10 over 200 epochs)
    temperature: float = field(default=10.0, metadata={"min_exclusive": 0.0})
    # tau at stage k = step // anneal_every: temperature / sqrt(1 + k) (LibMTL), temperature *
    # decay**k (Jang et al. 2017) or temperature; never below min_temperature
    schedule: str = field(
        default="inverse_sqrt", metadata={"choices": ["inverse_sqrt", "exponential", "constant"]}
    )
    anneal_every: int = field(default=5, metadata={"min": 1})  # steps per stage (1000 steps: 200)
    decay: float = field(default=0.95, metadata={"min_exclusive": 0.0, "max": 1.0})  # exponential
    min_temperature: float = field(default=0.5, metadata={"min_exclusive": 0.0})  # Jang et al.
    warmup_steps: int = field(default=0, metadata={"min": 0})  # uniform mixing, logits frozen
    hard: bool = True  # straight-through: one parent per node in the forward pass
    head_hidden: list[int] = field(default_factory=list)


@dataclass
class MTANModel:
    """Multi-task attention network: a shared backbone, and per-task soft-attention masks on its
    blocks' features (Liu, Johns & Davison 2019)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "mtan"
    families: ClassVar[tuple[str, ...]] = FAMILIES + ("dense",)

    _target_: str = "mtl_cli.models.mtan.MTAN"
    attention_layers: Any = "all"  # backbone block indices each task attends, e.g. [1, 2]; or "all"
    # attention hidden width = channels // reduction (1: SegNet/WRN MTAN; 4: the ResNet MTAN)
    reduction: int = field(default=1, metadata={"min": 1})
    norm: str = field(default="batch", metadata={"choices": ["batch", "none"]})  # in attention
    head_hidden: list[int] = field(default_factory=list)
