"""Schemas of the `loss` group: how per-task losses become one update (mtl_cli/loss/).

The trainer adds `num_tasks`, `task_names` and `steps_per_epoch` when it instantiates `_target_`.
"""

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class Equal:
    """Equal task weights, mean of the losses (linear scalarisation baseline, Caruana 1997)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "equal"
    #: serves single-objective families too (meta-learning: the mean query loss)
    single_objective: ClassVar[bool] = True

    _target_: str = "mtl_cli.loss.equal.Equal"
    reduction: str = field(default="mean", metadata={"choices": ["mean", "sum"]})


@dataclass
class Static:
    """Fixed user weight per task name, others 1.0 (linear scalarisation)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "static"

    _target_: str = "mtl_cli.loss.static.Static"
    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class Uncertainty:
    """Learned homoscedastic-uncertainty weights (Kendall, Gal & Cipolla 2018)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "uncertainty"

    _target_: str = "mtl_cli.loss.uncertainty.Uncertainty"
    variant: str = field(
        default="unit", metadata={"choices": ["unit", "regression", "classification"]}
    )
    init_log_variance: float = 0.0


@dataclass
class DWA:
    """Dynamic Weight Average from each task's loss descent rate (Liu, Johns & Davison 2019)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "dwa"

    _target_: str = "mtl_cli.loss.dwa.DWA"
    temperature: float = field(default=2.0, metadata={"min_exclusive": 0.0})
    period: int | None = field(default=None, metadata={"min": 1})  # None: steps per epoch


@dataclass
class GradNorm:
    """Learned weights balancing gradient norms by training rate (Chen et al. 2018)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "gradnorm"

    _target_: str = "mtl_cli.loss.gradnorm.GradNorm"
    alpha: float = field(default=1.5, metadata={"min": 0.0})
    lr: float = field(default=0.025, metadata={"min_exclusive": 0.0})


@dataclass
class MGDA:
    """Min-norm common descent direction, MGDA / MGDA-UB (Sener & Koltun 2018)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "mgda"

    _target_: str = "mtl_cli.loss.mgda.MGDA"
    normalization: str = field(
        default="none", metadata={"choices": ["none", "l2", "loss", "loss+"]}
    )
    max_iter: int = field(default=250, metadata={"min": 0})
    tol: float = field(default=1e-5, metadata={"min_exclusive": 0.0})
    rep_grad: bool = False


@dataclass
class PCGrad:
    """Project conflicting gradients, gradient surgery (Yu et al. 2020)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "pcgrad"

    _target_: str = "mtl_cli.loss.pcgrad.PCGrad"
    reduction: str = field(default="sum", metadata={"choices": ["sum", "mean"]})
    seed: int | None = field(default=None, metadata={"min": 0})  # None: the run's seed
    rep_grad: bool = False


@dataclass
class CAGrad:
    """Conflict-averse gradient descent (Liu et al. 2021)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "cagrad"

    _target_: str = "mtl_cli.loss.cagrad.CAGrad"
    c: float = field(default=0.4, metadata={"min": 0.0})
    rescale: int = field(default=1, metadata={"choices": [0, 1, 2]})
    rep_grad: bool = False


@dataclass
class IMTL:
    """Impartial gradient combination, IMTL-G (Liu et al. 2021)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "imtl"

    _target_: str = "mtl_cli.loss.imtl.IMTL"
    rep_grad: bool = False


@dataclass
class Nash:
    """Nash bargaining solution among task gradients, Nash-MTL (Navon et al. 2022)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "nash"

    _target_: str = "mtl_cli.loss.nash.NashMTL"
    update_weights_every: int = field(default=1, metadata={"min": 1})
    max_norm: float = field(default=1.0, metadata={"min": 0.0})  # 0: no clipping
    tol: float = field(default=1e-6, metadata={"min_exclusive": 0.0})
    max_iter: int = field(default=100, metadata={"min": 1})
    rep_grad: bool = False


@dataclass
class RLW:
    """Random loss weights drawn each step (Lin et al. 2021)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "rlw"

    _target_: str = "mtl_cli.loss.rlw.RLW"
    seed: int | None = field(default=None, metadata={"min": 0})  # None: the run's seed


@dataclass
class WorstCase:
    """Minimise the worst task loss, optionally log-sum-exp smoothed (robust MTL, CS330 lecture 2)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "worst_case"

    _target_: str = "mtl_cli.loss.worst_case.WorstCase"
    temperature: float = field(default=0.0, metadata={"min": 0.0})  # 0: hard max
