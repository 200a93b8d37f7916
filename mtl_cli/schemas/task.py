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
    #: `data.download=true` may fetch its official files (checksummed)
    downloads: ClassVar[bool] = True

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
    #: `data.download=true` may fetch its official files (checksummed)
    downloads: ClassVar[bool] = True

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
    # meta-val/test episodes (null = the training value; e.g. train 20-way, test 5-way as Snell
    # et al. 2017): the learner's schema says whether it can evaluate at other ways
    eval_ways: int | None = field(default=None, metadata={"min": 2})
    eval_shots: int | None = field(default=None, metadata={"min": 1})
    eval_queries: int | None = field(default=None, metadata={"min": 1})  # per class


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
    #: `data.download=true` may fetch its official files (checksummed)
    downloads: ClassVar[bool] = True

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
    #: `data.download=true` may fetch its official files (checksummed)
    downloads: ClassVar[bool] = True

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
    # K and query points of meta-val/test tasks (null = shots, queries; Finn et al. Fig. 2: K=5, 10)
    eval_shots: int | None = field(default=None, metadata={"min": 1})
    eval_queries: int | None = field(default=None, metadata={"min": 1})


@dataclass
class PersonalSpam:
    """Personal spam filters, one task per user (CS330 lecture 2; McCallum & Nigam 1998 mails)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multitask/personal_spam"
    input_kind: ClassVar[str] = "vector"

    _target_: str = "mtl_cli.tasks.multitask.personal_spam.personal_spam_tasks"
    family: str = _family("multitask")
    users: int = field(default=8, metadata={"min": 1, "max": 1024})  # one task per user
    vocab_size: int = field(default=500, metadata={"min": 2})  # input dim: log1p word counts
    topics: int = field(default=20, metadata={"min": 2})  # the first half are spam
    mail_length: float = field(default=20.0, metadata={"min": 1.0})  # mean words per mail
    preference_strength: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    user_shift: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0})  # p_i(x) differ
    mails_per_user: list[int] = field(default_factory=lambda: [10, 400])  # train [min, max]
    data_scale: float = field(default=1.0, metadata={"min_exclusive": 0.0})  # x mails_per_user
    val_per_user: int = field(default=100, metadata={"min": 1})
    test_per_user: int = field(default=500, metadata={"min": 1})
    data_seed: int = field(default=0, metadata={"min": 0})


@dataclass
class Table:
    """Multi-task tabular data from a CSV or Parquet file: one task per value of `task_column`
    (per-user tasks) or per column of `target_columns` (see docs/data/own_data.md)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multitask/table"
    input_kind: ClassVar[str] = "vector"

    _target_: str = "mtl_cli.tasks.multitask.table.table_tasks"
    family: str = _family("multitask")
    path: str = ""  # .csv, .parquet or .pq; relative paths resolved against data.root
    features: list[str] = field(default_factory=list)  # numeric columns; empty = all unused ones
    categorical: list[str] = field(default_factory=list)  # one-hot, categories from train rows
    task_column: Any = None  # null | column: one task per distinct value (XOR target_columns)
    target_columns: list[str] = field(default_factory=list)  # one task per column, all rows
    target: Any = None  # null | the label column (with task_column only)
    kind: str = field(
        default="classification", metadata={"choices": ["classification", "regression"]}
    )
    split_column: Any = None  # null | column of train/val/test; null = seeded split_fractions
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    split_seed: int = field(default=0, metadata={"min": 0})
    standardize: bool = True  # z-score numeric features with training-split mean/std
    min_rows_per_task: int = field(default=10, metadata={"min": 3})


@dataclass
class ImageFolders:
    """Multi-task classification from your image folders: one task per folder of data.root."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multitask/folders"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.multitask.folders.folder_tasks"
    family: str = _family("multitask")
    root: str | None = None  # <root>/<task>/<class>/<image>; null = data.root
    tasks: list[str] = field(default_factory=list)  # task folder names; empty = all
    image_size: Any = 28  # int or [H, W]
    channels: int = field(default=1, metadata={"choices": [1, 3]})  # 1 grayscale, 3 RGB
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    split_seed: int = field(default=0, metadata={"min": 0})
    min_images_per_class: int = field(default=2, metadata={"min": 1})


@dataclass
class Office31:
    """Office-31 (Saenko et al. 2010): one task per domain (amazon, dslr, webcam), 31 classes."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multitask/office31"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.multitask.office.office31_tasks"
    family: str = _family("multitask")
    root: str | None = None  # <root>/{amazon,dslr,webcam}/images/<class>/; null = data.root
    domains: list[str] = field(default_factory=list)  # subset of amazon, dslr, webcam; empty = all
    image_size: Any = 64  # the papers use 224 (ResNet); 64 keeps CPU runs practical
    channels: int = field(default=3, metadata={"choices": [1, 3]})
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])  # LibMTL
    split_seed: int = field(default=0, metadata={"min": 0})


@dataclass
class OfficeHome:
    """Office-Home (Venkateswara et al. 2017): one task per domain (4 domains), 65 classes."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multitask/office_home"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.multitask.office.office_home_tasks"
    family: str = _family("multitask")
    root: str | None = None  # <root>/{Art,Clipart,Product,Real World}/<class>/; null = data.root
    domains: list[str] = field(default_factory=list)  # art, clipart, product, real_world
    image_size: Any = 64  # the papers use 224 (ResNet); 64 keeps CPU runs practical
    channels: int = field(default=3, metadata={"choices": [1, 3]})
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])  # LibMTL
    split_seed: int = field(default=0, metadata={"min": 0})


@dataclass
class FolderSplitFiles:
    """meta/folders with split_by=files: one file per split (relative paths: from the root)."""

    train: str | None = None  # one class folder per line, or a filename,label CSV (*.csv)
    val: str | None = None
    test: str | None = None


@dataclass
class MetaImageFolders(EpisodeOptions):
    """Few-shot episodes from your class folders (flat or grouped), classes split three ways."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "meta/folders"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.meta.folders.folder_meta_classes"
    root: str | None = None  # null = data.root
    layout: str = field(default="auto", metadata={"choices": ["flat", "grouped", "auto"]})
    split_by: str = field(default="fraction", metadata={"choices": ["fraction", "group", "files"]})
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
    split_seed: int = field(default=0, metadata={"min": 0})
    split_files: FolderSplitFiles = field(default_factory=FolderSplitFiles)
    image_size: Any = 28  # int or [H, W]
    channels: int = field(default=1, metadata={"choices": [1, 3]})
    images_per_class: int = field(default=0, metadata={"min": 0})  # 0 = the smallest class's count


@dataclass
class MiniImageNetMeta(EpisodeOptions):
    """miniImageNet (Vinyals et al. 2016) with Ravi & Larochelle's 64/16/20 class split CSVs."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "meta/miniimagenet"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.meta.miniimagenet.miniimagenet_meta_classes"
    root: str | None = None  # {train,val,test}.csv + images/; null = data.root
    image_size: Any = 84  # the release's 84x84
    channels: int = field(default=3, metadata={"choices": [1, 3]})
    images_per_class: int = field(default=0, metadata={"min": 0})  # 0 = the smallest (600)
    check_counts: bool = True  # refuse split files without 64/16/20 classes


@dataclass
class CifarFsMeta(EpisodeOptions):
    """Few-shot CIFAR-FS (Bertinetto et al. 2019): CIFAR-100 fine classes split 64/16/20."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "meta/cifar_fs"
    input_kind: ClassVar[str] = "image"
    #: `data.download=true` may fetch its official files (checksummed)
    downloads: ClassVar[bool] = True

    _target_: str = "mtl_cli.tasks.meta.cifar_fewshot.cifar_fs_meta_classes"


@dataclass
class Fc100Meta(EpisodeOptions):
    """Few-shot FC100 (Oreshkin et al. 2018): CIFAR-100 split by superclass 12/4/4."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "meta/fc100"
    input_kind: ClassVar[str] = "image"
    #: `data.download=true` may fetch its official files (checksummed)
    downloads: ClassVar[bool] = True

    _target_: str = "mtl_cli.tasks.meta.cifar_fewshot.fc100_meta_classes"


@dataclass
class DenseScenes:
    """Dense scene understanding on procedural rooms: segmentation, z-depth, normals (no download)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "dense/scenes"
    input_kind: ClassVar[str] = "image"
    backbone_output: ClassVar[str] = "map"

    _target_: str = "mtl_cli.tasks.dense.scenes.scene_tasks"
    family: str = field(default="dense", metadata={"choices": ["dense"]})
    tasks: list[str] = field(default_factory=lambda: ["segmentation", "depth", "normals"])
    image_size: int = field(default=64, metadata={"min": 16, "max": 256})
    train_size: int = field(default=2000, metadata={"min": 1})
    val_size: int = field(default=500, metadata={"min": 1})
    test_size: int = field(default=500, metadata={"min": 1})
    objects: list[int] = field(default_factory=lambda: [2, 5])  # [min, max] per scene, max <= 12
    noise: float = field(default=0.02, metadata={"min": 0.0, "max": 0.5})  # RGB noise std
    data_seed: int = field(default=0, metadata={"min": 0})


@dataclass
class CelebAAttributes:
    """CelebA face attributes (Liu et al. 2015) as multi-label tasks, official partition."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multilabel/celeba"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.multilabel.celeba.celeba_attribute_tasks"
    family: str = _family("multilabel")
    attributes: list[str] = field(default_factory=list)  # empty = all 40
    image_size: int = field(default=64, metadata={"min": 8, "max": 178})  # the usual 64x64
    center_crop: bool = True  # 178x178 center crop before the resize
    max_samples: Any = None  # null = every image | a positive cap per split (CPU runs)
    pos_weight: Any = None  # null | auto | [one positive number per label]
    threshold: Any = 0.5  # probability in (0, 1) or "val_f1"


@dataclass
class DenseNYUv2:
    """NYUv2 in MTAN's preprocessed layout: 13-class segmentation, depth, normals (user's files)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "dense/nyuv2"
    input_kind: ClassVar[str] = "image"
    backbone_output: ClassVar[str] = "map"

    _target_: str = "mtl_cli.tasks.dense.nyuv2.nyuv2_tasks"
    family: str = field(default="dense", metadata={"choices": ["dense"]})
    tasks: list[str] = field(default_factory=lambda: ["segmentation", "depth", "normals"])
    image_size: list[int] | None = None  # [H, W] to down-sample from 288 x 384; null = native
    val_fraction: float = field(default=0.1, metadata={"min_exclusive": 0.0, "max": 0.5})
    split_seed: int = field(default=0, metadata={"min": 0})  # which train samples become val
    max_samples: int | None = field(default=None, metadata={"min": 1})  # per split; null = all


@dataclass
class DenseCityscapes:
    """Cityscapes in MTAN's preprocessed layout: 7-class segmentation and depth (user's files)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "dense/cityscapes"
    input_kind: ClassVar[str] = "image"
    backbone_output: ClassVar[str] = "map"

    _target_: str = "mtl_cli.tasks.dense.cityscapes.cityscapes_tasks"
    family: str = field(default="dense", metadata={"choices": ["dense"]})
    tasks: list[str] = field(default_factory=lambda: ["segmentation", "depth"])
    image_size: list[int] | None = None  # [H, W] to down-sample from 128 x 256; null = native
    val_fraction: float = field(default=0.1, metadata={"min_exclusive": 0.0, "max": 0.5})
    split_seed: int = field(default=0, metadata={"min": 0})  # which train samples become val
    max_samples: int | None = field(default=None, metadata={"min": 1})  # per split; null = all


@dataclass
class MultiLabelCsv:
    """Multi-label images listed in a CSV: 0/1 label columns or one column of ';'-separated
    label names (see docs/data/own_data.md)."""

    group: ClassVar[str] = "task"
    name: ClassVar[str] = "multilabel/csv"
    input_kind: ClassVar[str] = "image"

    _target_: str = "mtl_cli.tasks.multilabel.csv_images.csv_image_labels"
    family: str = _family("multilabel")
    path: str = ""  # the CSV; relative paths resolved against data.root
    image_column: str = "image"  # image paths relative to the CSV's folder, kept inside it
    label_columns: list[str] = field(default_factory=list)  # 0/1 columns; empty = all the others
    labels_column: Any = None  # null | column of ';'-separated names (XOR label_columns)
    label_names: list[str] = field(default_factory=list)  # labels_column's vocabulary and order
    image_size: Any = 32  # int or [H, W]
    channels: int = field(default=3, metadata={"choices": [1, 3]})  # 1 grayscale, 3 RGB
    split_column: Any = None  # null | column of train/val/test; null = seeded split_fractions
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    split_seed: int = field(default=0, metadata={"min": 0})
    pos_weight: Any = None  # null | auto | [one positive number per label]
    threshold: Any = 0.5  # probability in (0, 1) or "val_f1"
