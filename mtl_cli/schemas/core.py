"""Schemas of the top-level config, the trainer and the optimizer groups."""

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class DataConfig:
    """Where datasets and render caches live."""

    root: str | None = (
        None  # dataset files (Fashion-MNIST, Omniglot); else $MTL_DATA_DIR, system dirs
    )
    download: bool = False  # allow downloading official files (with checksum verification)
    cache_dir: str | None = None  # render/construction cache; else $MTL_CACHE_DIR, ~/.cache/mtl_cli


@dataclass
class PathsConfig:
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class MainConfig:
    """The whole experiment: `task`, `model`, `backbone`, `loss`, `optim`, `trainer` are groups."""

    group: ClassVar[str] = ""
    name: ClassVar[str] = "main"

    task: Any = None
    model: Any = None
    backbone: Any = None
    loss: Any = None
    optim: Any = None
    trainer: Any = None
    logger: Any = None
    data: DataConfig = field(default_factory=DataConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = field(default=0, metadata={"min": 0})
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    baseline_run: str | None = None  # finished `independent` run: metrics.json gets Δm against it
    optimized_metric: str = "auto"  # metrics.json key sweepers optimise; auto = best_val/<select>


@dataclass
class Trainer:
    """Default training loop: 1000 steps of 32 examples per task, evaluation every 100 steps."""

    group: ClassVar[str] = "trainer"
    name: ClassVar[str] = "default"

    steps: int = field(default=1000, metadata={"min": 1})
    batch_size: int = field(default=32, metadata={"min": 1})  # per task (multi-task) or shared
    eval_every: int = field(default=100, metadata={"min": 1})
    eval_batch_size: int = field(default=1024, metadata={"min": 1})
    task_sampling: str = field(
        default="all", metadata={"choices": ["all", "uniform", "proportional"]}
    )
    tasks_per_step: int = field(default=2, metadata={"min": 1})  # used by uniform | proportional
    select_metric: str = "auto"  # val metric that picks best.pt; auto = the family's first
    # early stopping on a validation plateau: stop when select_metric has not improved by more
    # than min_delta for `patience` evaluations in a row; 0 = off (train all `steps`)
    patience: int = field(default=0, metadata={"min": 0})
    min_delta: float = field(default=0.0, metadata={"min": 0.0})
    grad_clip: float = field(default=0.0, metadata={"min": 0.0})  # max grad norm; 0 = off
    threads: int = field(default=0, metadata={"min": 0})  # torch CPU threads; 0 = torch's default
    progress: bool = True  # tqdm bar (only on a terminal)
    resume: bool = True  # continue from checkpoints/last.pt when the run dir has one
    diagnostics: bool = True  # task-gradient conflict statistics at each evaluation
    # torch.compile the model: false | true (a model that cannot be compiled is an error) | auto
    # (fall back to eager); docs/runs.md#compilation. Any: Hydra reads true/false as bools
    compile: Any = field(default=False, metadata={"choices": [False, True, "auto"]})
    compile_mode: str = field(
        default="default", metadata={"choices": ["default", "reduce-overhead", "max-autotune"]}
    )
    # 32: float32; bf16: autocast to bfloat16 (CPU, CUDA); 16-mixed: CUDA autocast to float16
    # with a gradient scaler (docs/runs.md#precision)
    precision: str = field(default="32", metadata={"choices": ["32", "bf16", "16-mixed"]})


@dataclass
class Adam:
    """Adam (Kingma & Ba 2015), optional warm-up and cosine/step schedule."""

    group: ClassVar[str] = "optim"
    name: ClassVar[str] = "adam"

    _target_: str = "torch.optim.Adam"
    lr: float = field(default=1e-3, metadata={"min_exclusive": 0.0})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = field(default=1e-8, metadata={"min_exclusive": 0.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})
    decoupled_weight_decay: bool = False
    scheduler: str = field(default="none", metadata={"choices": ["none", "cosine", "step"]})
    warmup_steps: int = field(default=0, metadata={"min": 0})
    step_size: int = field(default=1000, metadata={"min": 1})  # scheduler=step
    gamma: float = field(default=0.5, metadata={"min_exclusive": 0.0, "max": 1.0})


@dataclass
class SGD:
    """SGD with momentum, optional warm-up and cosine/step schedule."""

    group: ClassVar[str] = "optim"
    name: ClassVar[str] = "sgd"

    _target_: str = "torch.optim.SGD"
    lr: float = field(default=0.05, metadata={"min_exclusive": 0.0})
    momentum: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    nesterov: bool = False
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})
    scheduler: str = field(default="none", metadata={"choices": ["none", "cosine", "step"]})
    warmup_steps: int = field(default=0, metadata={"min": 0})
    step_size: int = field(default=1000, metadata={"min": 1})
    gamma: float = field(default=0.5, metadata={"min_exclusive": 0.0, "max": 1.0})
