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


@dataclass
class UPGrad:
    """Mean of each gradient's projection onto the dual cone, UPGrad (Quinton & Rey 2024)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "upgrad"

    _target_: str = "mtl_cli.loss.upgrad.UPGrad"
    #: {task name: preference}, every task or none; {}: 1/T each (the mean)
    pref_vector: dict[str, float] = field(default_factory=dict)
    norm_eps: float = field(default=1e-4, metadata={"min": 0.0})
    reg_eps: float = field(default=1e-4, metadata={"min": 0.0})
    rep_grad: bool = False


@dataclass
class DualProj:
    """Mean gradient projected onto the gradients' dual cone, DualProj (Quinton & Rey 2024)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "dualproj"

    _target_: str = "mtl_cli.loss.dualproj.DualProj"
    #: {task name: preference}, every task or none; {}: 1/T each (the mean)
    pref_vector: dict[str, float] = field(default_factory=dict)
    norm_eps: float = field(default=1e-4, metadata={"min": 0.0})
    reg_eps: float = field(default=1e-4, metadata={"min": 0.0})
    rep_grad: bool = False


@dataclass
class AlignedMTL:
    """Gradient components aligned to condition number 1, Aligned-MTL (Senushkin et al. 2023)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "aligned_mtl"

    _target_: str = "mtl_cli.loss.aligned_mtl.AlignedMTL"
    #: {task name: task weight}, every task or none; {}: ones (the sum, as the official code)
    pref_vector: dict[str, float] = field(default_factory=dict)
    scale_mode: str = field(default="min", metadata={"choices": ["min", "median", "rmse"]})
    rep_grad: bool = False


@dataclass
class ConFIG:
    """Equal projections on every unit task gradient, ConFIG (Liu, Chu & Thuerey 2024)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "config_grad"

    _target_: str = "mtl_cli.loss.config_grad.ConFIG"
    #: {task name: weight}, every task or none; {}: ones (equal angles)
    pref_vector: dict[str, float] = field(default_factory=dict)
    length_model: str = field(
        default="projection",
        metadata={
            "choices": [
                "projection",
                "track_min",
                "track_max",
                "track_harmonic",
                "track_arithmetic",
                "track_geometric",
            ]
        },
    )
    rep_grad: bool = False


@dataclass
class FAMO:
    """Fast adaptive multitask optimization: weights from log-loss decrease (Liu et al. 2023)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "famo"

    _target_: str = "mtl_cli.loss.famo.FAMO"
    w_lr: float = field(default=0.025, metadata={"min_exclusive": 0.0})  # Adam lr of the logits
    gamma: float = field(default=1e-3, metadata={"min": 0.0})  # weight decay of the logits
    min_losses: dict[str, float] = field(default_factory=dict)  # per task name; unlisted: 0
    eps: float = field(default=1e-8, metadata={"min_exclusive": 0.0})


@dataclass
class FairGrad:
    """Alpha-fair allocation among task gradients, (G G^T) w = w^(-1/alpha) (Ban & Ji 2024)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "fairgrad"

    _target_: str = "mtl_cli.loss.fairgrad.FairGrad"
    alpha: float = field(default=1.0, metadata={"min_exclusive": 0.0})
    tol: float = field(default=1e-6, metadata={"min_exclusive": 0.0})
    max_iter: int = field(default=100, metadata={"min": 1})
    rep_grad: bool = False


@dataclass
class DBMTL:
    """Dual balancing: log losses, EMA task gradients scaled to the largest (Lin et al. 2023)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "db_mtl"

    _target_: str = "mtl_cli.loss.db_mtl.DBMTL"
    beta: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    beta_sigma: float = field(default=0.0, metadata={"min": 0.0})  # beta_k = beta / k^beta_sigma
    rep_grad: bool = False


@dataclass
class STCH:
    """Smooth Tchebycheff scalarisation of nadir-normalised log losses (Lin et al. 2024)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "stch"

    _target_: str = "mtl_cli.loss.stch.STCH"
    mu: float = field(default=1.0, metadata={"min_exclusive": 0.0})
    warmup_epochs: int = field(default=4, metadata={"min": 0})
    period: int | None = field(default=None, metadata={"min": 1})  # None: steps per epoch
    preference: dict[str, float] = field(default_factory=dict)  # per task name; unlisted: 1


@dataclass
class GLS:
    """Geometric loss strategy: minimise the losses' geometric mean (Chennupati et al. 2019)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "gls"

    _target_: str = "mtl_cli.loss.gls.GLS"


@dataclass
class GradVac:
    """Gradient Vaccine: pull each pair's gradient cosine up to an EMA target (Wang et al. 2021)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "gradvac"

    _target_: str = "mtl_cli.loss.gradvac.GradVac"
    beta: float = field(default=0.01, metadata={"min_exclusive": 0.0, "max": 1.0})  # EMA rate
    seed: int | None = field(default=None, metadata={"min": 0})  # None: the run's seed
    rep_grad: bool = False


@dataclass
class GradDrop:
    """Gradient sign dropout: keep one random sign per element by sign purity (Chen et al. 2020)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "graddrop"

    _target_: str = "mtl_cli.loss.graddrop.GradDrop"
    leak: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})
    seed: int | None = field(default=None, metadata={"min": 0})  # None: the run's seed
    rep_grad: bool = False


@dataclass
class RGW:
    """Random gradient weights drawn each step, heads unweighted (Lin et al. 2022)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "rgw"

    _target_: str = "mtl_cli.loss.rgw.RGW"
    seed: int | None = field(default=None, metadata={"min": 0})  # None: the run's seed
    rep_grad: bool = False


@dataclass
class ExcessMTL:
    """Robust weights by exponentiated gradient on estimated excess risks (He et al. 2024)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "excess_mtl"

    _target_: str = "mtl_cli.loss.excess_mtl.ExcessMTL"
    robust_step_size: float = field(default=0.01, metadata={"min_exclusive": 0.0})


@dataclass
class MoCo:
    """Min-norm combination of tracked task gradients, stochastic MGDA (Fernando et al. 2023)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "moco"

    _target_: str = "mtl_cli.loss.moco.MoCo"
    beta: float = field(default=0.5, metadata={"min_exclusive": 0.0, "max": 1.0})
    beta_decay: float = field(default=0.5, metadata={"min": 0.0})  # beta_k = beta / k^decay
    gamma: float = field(default=0.1, metadata={"min_exclusive": 0.0})
    gamma_decay: float = field(default=0.5, metadata={"min": 0.0})  # gamma_k = gamma / k^decay
    rho: float = field(default=0.0, metadata={"min": 0.0})
    rep_grad: bool = field(default=False, metadata={"choices": [False]})  # tracks parameters


@dataclass
class MoDo:
    """MoDo: multi-objective gradient with double sampling (Chen, Fernando, Ying & Chen 2023)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "modo"
    #: independent batches per step: two estimate the Gram matrix, the third gives the update
    samples_per_step: ClassVar[int] = 3

    _target_: str = "mtl_cli.loss.modo.MoDo"
    gamma: float = field(default=1e-3, metadata={"min_exclusive": 0.0})  # step size of the weights
    rho: float = field(default=0.1, metadata={"min": 0.0})  # l2 regularisation of the weights


@dataclass
class SDMGrad:
    """SDMGrad: direction-oriented stochastic multi-objective gradient (Xiao, Ban & Ji 2023)."""

    group: ClassVar[str] = "loss"
    name: ClassVar[str] = "sdmgrad"
    #: independent batches per step: two estimate the Gram matrix, the third gives the update
    samples_per_step: ClassVar[int] = 3

    _target_: str = "mtl_cli.loss.sdmgrad.SDMGrad"
    lamda: float = field(default=0.3, metadata={"min": 0.0})  # pull towards the mean gradient
    niter: int = field(default=20, metadata={"min": 1})  # weight steps per training step
    w_lr: float = field(default=5.0, metadata={"min_exclusive": 0.0})
    w_momentum: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
