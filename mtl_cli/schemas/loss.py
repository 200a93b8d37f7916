"""Schemas of the `loss` group: how per-task losses become one update (mtl_cli/weighting/).

The trainer adds `num_tasks`, `task_names` and `steps_per_epoch` when it instantiates `_target_`.
"""

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class Equal:
    """Equal weights: mean (default) or sum of the task losses."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "equal"
    #: meta-learning has one objective (the mean query loss), so only this method applies there
    families: ClassVar[tuple[str, ...]] = ("multitask", "multilabel", "meta")

    _target_: str = "mtl_cli.weighting.equal.Equal"
    reduction: str = field(default="mean", metadata={"choices": ["mean", "sum"]})


@dataclass
class Static:
    """Fixed weight per task name; tasks not listed get 1.0."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "static"

    _target_: str = "mtl_cli.weighting.static.Static"
    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class Uncertainty:
    """Learned homoscedastic uncertainty per task (Kendall, Gal & Cipolla 2018)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "uncertainty"

    _target_: str = "mtl_cli.weighting.uncertainty.Uncertainty"
    variant: str = field(
        default="unit", metadata={"choices": ["unit", "regression", "classification"]}
    )
    init_log_variance: float = 0.0


@dataclass
class DWA:
    """Dynamic Weight Average (Liu, Johns & Davison 2019)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "dwa"

    _target_: str = "mtl_cli.weighting.dwa.DWA"
    temperature: float = field(default=2.0, metadata={"min_exclusive": 0.0})
    period: int | None = field(default=None, metadata={"min": 1})  # None: steps per epoch


@dataclass
class GradNorm:
    """GradNorm (Chen et al. 2018)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "gradnorm"

    _target_: str = "mtl_cli.weighting.gradnorm.GradNorm"
    alpha: float = field(default=1.5, metadata={"min": 0.0})
    lr: float = field(default=0.025, metadata={"min_exclusive": 0.0})


@dataclass
class MGDA:
    """MGDA / MGDA-UB min-norm solver (Sener & Koltun 2018)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "mgda"

    _target_: str = "mtl_cli.weighting.mgda.MGDA"
    normalization: str = field(
        default="none", metadata={"choices": ["none", "l2", "loss", "loss+"]}
    )
    max_iter: int = field(default=250, metadata={"min": 0})
    tol: float = field(default=1e-5, metadata={"min_exclusive": 0.0})
    rep_grad: bool = False


@dataclass
class PCGrad:
    """Projecting conflicting gradients (Yu et al. 2020)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "pcgrad"

    _target_: str = "mtl_cli.weighting.pcgrad.PCGrad"
    reduction: str = field(default="sum", metadata={"choices": ["sum", "mean"]})
    seed: int | None = field(default=None, metadata={"min": 0})  # None: the run's seed
    rep_grad: bool = False


@dataclass
class CAGrad:
    """Conflict-averse gradient descent (Liu et al. 2021)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "cagrad"

    _target_: str = "mtl_cli.weighting.cagrad.CAGrad"
    c: float = field(default=0.4, metadata={"min": 0.0})
    rescale: int = field(default=1, metadata={"choices": [0, 1, 2]})
    rep_grad: bool = False


@dataclass
class IMTL:
    """IMTL-G, impartial gradient combination (Liu et al. 2021)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "imtl"

    _target_: str = "mtl_cli.weighting.imtl.IMTL"
    rep_grad: bool = False


@dataclass
class Nash:
    """Nash-MTL bargaining solution (Navon et al. 2022)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "nash"

    _target_: str = "mtl_cli.weighting.nash.NashMTL"
    update_weights_every: int = field(default=1, metadata={"min": 1})
    max_norm: float = field(default=1.0, metadata={"min": 0.0})  # 0: no clipping
    tol: float = field(default=1e-6, metadata={"min_exclusive": 0.0})
    max_iter: int = field(default=100, metadata={"min": 1})
    rep_grad: bool = False


@dataclass
class RLW:
    """Random loss weighting (Lin et al. 2021)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "rlw"

    _target_: str = "mtl_cli.weighting.rlw.RLW"
    seed: int | None = field(default=None, metadata={"min": 0})  # None: the run's seed


@dataclass
class WorstCase:
    """Minimise the largest task loss, optionally log-sum-exp smoothed."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "worst_case"

    _target_: str = "mtl_cli.weighting.worst_case.WorstCase"
    temperature: float = field(default=0.0, metadata={"min": 0.0})  # 0: hard max
