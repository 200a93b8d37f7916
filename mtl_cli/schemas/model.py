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
    families: ClassVar[tuple[str, ...]] = FAMILIES

    _target_: str = "mtl_cli.models.independent.Independent"
    head_hidden: list[int] = field(default_factory=list)  # hidden sizes of each head's MLP


@dataclass
class HardSharingModel:
    """Shared trunk, one head per task (Caruana 1997)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "hard_sharing"
    families: ClassVar[tuple[str, ...]] = FAMILIES
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
    families: ClassVar[tuple[str, ...]] = FAMILIES

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
