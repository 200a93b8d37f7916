"""Schemas of the `task` group: the family, the dataset, and how tasks are built from it."""

from dataclasses import dataclass, field
from typing import Any, ClassVar


def _family(name: str) -> Any:
    return field(default=name, metadata={"choices": [name]})


@dataclass
class Render:
    """How Hershey glyphs become images: per-drawer affine jitter, stroke jitter and width."""

    size: int = field(default=28, metadata={"min": 8, "max": 256})
    drawers: int = field(default=20, metadata={"min": 3, "max": 200})
    rotation_deg: float = field(default=10.0, metadata={"min": 0.0, "max": 180.0})
    shear: float = field(default=0.15, metadata={"min": 0.0, "max": 1.0})
    scale: list[float] = field(default_factory=lambda: [0.85, 1.1])
    translate: float = field(default=0.08, metadata={"min": 0.0, "max": 0.5})
    point_jitter: float = field(default=0.02, metadata={"min": 0.0, "max": 0.5})
    stroke_width: list[float] = field(default_factory=lambda: [1.0, 2.2])


# ------------------------------------------------------------------ multi-task


@dataclass
class HersheyAlphabets:
    """Multi-task classification: one task per Hershey alphabet, its characters the classes."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multitask/hershey_alphabets"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.multitask.hershey_alphabets.hershey_alphabet_tasks"
    family: str = _family("multitask")
    alphabets: list[str] = field(default_factory=list)  # one task per alphabet; >= 1
    data_seed: int = field(default=0, metadata={"min": 0})  # renders; fixed across training seeds
    render: Render = field(default_factory=Render)


@dataclass
class MultiFashion:
    """MultiFashion: left and right Fashion-MNIST item of one image (Lin et al. 2019; needs Fashion-MNIST)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multitask/multifashion"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.multitask.multifashion.multifashion_tasks"
    family: str = _family("multitask")
    train_size: int = field(default=120000, metadata={"min": 10})
    val_size: int = field(default=10000, metadata={"min": 10})
    test_size: int = field(default=20000, metadata={"min": 10})
    image_size: int = field(default=28, metadata={"min": 8, "max": 72})
    max_shift: int = field(default=4, metadata={"min": 0, "max": 8})
    data_seed: int = field(default=0, metadata={"min": 0})


@dataclass
class SyntheticMMoE:
    """Two regression tasks with controllable correlation (MMoE synthetic data, Ma et al. 2018)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multitask/synthetic_mmoe"
    input_kind: ClassVar[str] = "vector"
    kind: ClassVar[str] = "regression"

    _target_: str = "mtl_cli.tasks.multitask.synthetic_mmoe.synthetic_mmoe_tasks"
    family: str = _family("multitask")
    correlation: float = field(default=0.5, metadata={"min": -1.0, "max": 1.0})
    num_tasks: int = field(default=2, metadata={"min": 2, "max": 16})
    dim: int = field(default=100, metadata={"min": 2})
    train_size: int = field(default=10000, metadata={"min": 10})
    val_size: int = field(default=1000, metadata={"min": 10})
    test_size: int = field(default=1000, metadata={"min": 10})
    data_seed: int = field(default=0, metadata={"min": 0})


# ------------------------------------------------------------------ multi-label


@dataclass
class HersheyAttributes:
    """Multi-label: geometric and alphabet-group attributes of each Hershey glyph image."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multilabel/hershey_attributes"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.multilabel.hershey_attributes.hershey_attribute_tasks"
    family: str = _family("multilabel")
    alphabets: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # empty = every attribute
    pos_weight: Any = None  # null | auto | [one positive number per label]
    threshold: Any = 0.5  # probability in (0, 1) or "val_f1"
    data_seed: int = field(default=0, metadata={"min": 0})
    render: Render = field(default_factory=Render)


@dataclass
class FashionMosaic:
    """Which Fashion-MNIST classes appear in a 2x2 mosaic (needs Fashion-MNIST)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multilabel/fashion_mosaic"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.multilabel.fashion_mosaic.fashion_mosaic_tasks"
    family: str = _family("multilabel")
    grid: int = field(default=2, metadata={"min": 1, "max": 4})
    items: list[int] = field(default_factory=lambda: [1, 4])  # [min, max] items per image
    image_size: int = field(default=56, metadata={"min": 8, "max": 112})
    train_size: int = field(default=60000, metadata={"min": 10})
    val_size: int = field(default=5000, metadata={"min": 10})
    test_size: int = field(default=10000, metadata={"min": 10})
    pos_weight: Any = None
    threshold: Any = 0.5
    data_seed: int = field(default=0, metadata={"min": 0})


@dataclass
class SyntheticMultiLabel:
    """Synthetic labels with controllable correlation and cardinality (latent-factor model)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multilabel/synthetic"
    input_kind: ClassVar[str] = "vector"

    _target_: str = "mtl_cli.tasks.multilabel.synthetic.synthetic_multilabel_tasks"
    family: str = _family("multilabel")
    num_labels: int = field(default=8, metadata={"min": 2, "max": 256})
    dim: int = field(default=32, metadata={"min": 2})
    correlation: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    cardinality: float = field(default=2.0, metadata={"min_exclusive": 0.0})
    train_size: int = field(default=10000, metadata={"min": 10})
    val_size: int = field(default=2000, metadata={"min": 10})
    test_size: int = field(default=2000, metadata={"min": 10})
    pos_weight: Any = None
    threshold: Any = 0.5
    data_seed: int = field(default=0, metadata={"min": 0})


# ------------------------------------------------------------------ meta-learning


@dataclass
class EpisodeOptions:
    """Shared by the few-shot classification tasks."""

    family: str = _family("meta")
    kind: str = field(default="classification", metadata={"choices": ["classification"]})
    ways: int = field(default=5, metadata={"min": 2})
    shots: int = field(default=1, metadata={"min": 1})
    queries: int = field(default=5, metadata={"min": 1})  # per class
    rotations: bool = False  # 90-degree rotations as new classes
    meta_batch_size: int = field(default=16, metadata={"min": 1})
    eval_episodes: int = field(default=600, metadata={"min": 1})
    eval_seed: int = field(default=0, metadata={"min": 0})


@dataclass
class HersheyMeta(EpisodeOptions):
    """Few-shot classification over Hershey characters, classes split by alphabet or by class."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "meta/hershey"
    #: only the presets task/meta/<...>.yaml (ways, shots) are choices
    preset_base: ClassVar[bool] = True
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.meta.hershey.hershey_meta_classes"
    alphabets: list[str] = field(default_factory=list)
    split_by: str = field(default="alphabet", metadata={"choices": ["alphabet", "class"]})
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
    split_seed: int = field(default=0, metadata={"min": 0})
    data_seed: int = field(default=0, metadata={"min": 0})
    render: Render = field(default_factory=Render)


@dataclass
class OmniglotMeta(EpisodeOptions):
    """Few-shot Omniglot (Lake et al. 2015): background alphabets train (+val), evaluation test."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "meta/omniglot"
    #: only the presets task/meta/<...>.yaml (ways, shots) are choices
    preset_base: ClassVar[bool] = True
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.meta.omniglot.omniglot_meta_classes"
    image_size: int = field(default=28, metadata={"min": 8, "max": 105})
    split_by: str = field(default="official", metadata={"choices": ["official", "class"]})
    val_alphabets: int = field(default=5, metadata={"min": 1})  # background alphabets held out
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])  # split_by=class
    split_seed: int = field(default=0, metadata={"min": 0})


@dataclass
class FashionMeta(EpisodeOptions):
    """Few-shot Fashion-MNIST: disjoint class sets for meta-train/val/test (documented)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "meta/fashion"
    #: only the presets task/meta/<...>.yaml (ways, shots) are choices
    preset_base: ClassVar[bool] = True
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.meta.fashion.fashion_meta_classes"
    train_classes: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    val_classes: list[int] = field(default_factory=lambda: [4, 5, 6])
    test_classes: list[int] = field(default_factory=lambda: [7, 8, 9])


@dataclass
class Sinusoid:
    """Sinusoid regression tasks, amplitude and phase per task (Finn et al. 2017)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "meta/sinusoid"
    input_kind: ClassVar[str] = "vector"

    _target_: str = "mtl_cli.tasks.meta.sinusoid.sinusoid_tasks"
    family: str = _family("meta")
    kind: str = field(default="regression", metadata={"choices": ["regression"]})
    shots: int = field(default=10, metadata={"min": 1})
    queries: int = field(default=10, metadata={"min": 1})
    amplitude: list[float] = field(default_factory=lambda: [0.1, 5.0])
    phase: list[float] = field(default_factory=lambda: [0.0, 3.141592653589793])
    x_range: list[float] = field(default_factory=lambda: [-5.0, 5.0])
    meta_batch_size: int = field(default=25, metadata={"min": 1})
    eval_episodes: int = field(default=600, metadata={"min": 1})
    eval_seed: int = field(default=0, metadata={"min": 0})
    eval_steps: list[int] = field(default_factory=lambda: [1, 10])  # extra MSE@k for MAML
