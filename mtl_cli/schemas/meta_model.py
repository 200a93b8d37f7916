"""Schemas of the meta-learners (`model/meta/*` choices); the trainer builds them with
`instantiate(cfg.model, input_shape=..., ways=..., kind=..., make_backbone=...)`."""

from dataclasses import dataclass, field
from typing import ClassVar

_BOTH_KINDS = ("classification", "regression")
_ENCODERS = ["flatten", "backbone"]
#: BatchNorm statistics of the adapting learners' query predictions (models/meta/base.py)
BN_MODES = ["transductive", "per_example"]


@dataclass
class MANN:
    """LSTM meta-learner reading (input, one-hot label) sequences (Santoro et al. 2016; CS330 HW1)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/mann"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = _BOTH_KINDS

    _target_: str = "mtl_cli.models.meta.mann.MANN"
    hidden_size: int = field(default=128, metadata={"min": 1})
    num_layers: int = field(default=2, metadata={"min": 1})
    encoder: str = field(default="flatten", metadata={"choices": _ENCODERS})
    # true: a random support order per training episode (Santoro et al. 2016); false: the sampler's
    # (K rounds of labels 0..N-1, the CS330 HW1 layout), which trains faster (docs/meta.md)
    shuffle_support: bool = False


@dataclass
class SNAIL:
    """Temporal convolutions + causal soft attention over (input, label) sequences (Mishra et al. 2018)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/snail"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = _BOTH_KINDS

    _target_: str = "mtl_cli.models.meta.snail.SNAIL"
    key_sizes: list[int] = field(default_factory=lambda: [64, 256, 512])
    value_sizes: list[int] = field(default_factory=lambda: [32, 128, 256])
    filters: int = field(default=128, metadata={"min": 1})
    # paper: ceil(log2(N*K + 1)) -> 3 (5-way 1-shot, the default), 5 (5w5s, 20w1s), 7 (20w5s)
    dense_blocks: int = field(default=3, metadata={"min": 1})
    encoder: str = field(default="backbone", metadata={"choices": _ENCODERS})
    # true: a random support order per training episode (Mishra et al. 2018); false: the sampler's
    # (K rounds of labels 0..N-1), where SNAIL learns a position shortcut (docs/meta.md)
    shuffle_support: bool = True


@dataclass
class MAML:
    """Model-agnostic meta-learning: adapt by gradient steps on the support (Finn et al. 2017)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/maml"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = _BOTH_KINDS

    _target_: str = "mtl_cli.models.meta.maml.MAML"
    inner_steps: int = field(default=1, metadata={"min": 0})
    inner_lr: float = field(default=0.4, metadata={"min_exclusive": 0.0})
    eval_inner_steps: int | None = field(default=3, metadata={"min": 0})  # null = inner_steps
    eval_inner_lr: float | None = field(default=None, metadata={"min_exclusive": 0.0})
    first_order: bool = False
    learn_inner_lr: bool = False  # Meta-SGD; then eval_inner_lr must stay null
    # BatchNorm statistics of query predictions: the query batch (Finn et al.'s code) or the
    # support plus that one query (Nichol et al. 2018's non-transductive setting)
    bn_mode: str = field(default="transductive", metadata={"choices": BN_MODES})


@dataclass
class ProtoNet:
    """Prototypical networks: nearest class-mean embedding, squared Euclidean (Snell et al. 2017)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/protonet"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    #: evaluates at any task.eval_ways (no ways-sized layer; Snell et al. train 20-way, test 5-way)
    any_eval_ways: ClassVar[bool] = True

    _target_: str = "mtl_cli.models.meta.protonet.ProtoNet"


@dataclass
class Pretrained:
    """Baseline: regression pooled over tasks, fine-tuned on each support by SGD (Finn et al. 2017 §5.1)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/pretrained"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = ("regression",)

    _target_: str = "mtl_cli.models.meta.pretrained.Pretrained"
    inner_steps: int = field(default=1, metadata={"min": 0})  # fine-tuning steps at evaluation
    inner_lr: float = field(default=0.01, metadata={"min_exclusive": 0.0})  # fine-tuning SGD rate


@dataclass
class MatchingNetwork:
    """Matching networks: softmax attention over cosine similarities to the support (Vinyals et al. 2016)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/matching"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    #: evaluates at any task.eval_ways (attention over the support's one-hot labels)
    any_eval_ways: ClassVar[bool] = True

    _target_: str = "mtl_cli.models.meta.matching.MatchingNetwork"
    cosine_scale: float = field(default=1.0, metadata={"min_exclusive": 0.0})  # paper: plain cosine
    full_context_embeddings: bool = False  # the paper's FCE (bidirectional + attention LSTMs)
    fce_steps: int = field(default=1, metadata={"min": 1})  # attention-LSTM processing steps K


RELATION_LOSSES = ["mse", "ce"]


@dataclass
class RelationNetwork:
    """Relation networks: a learned module scores (query, class) embedding pairs (Sung et al. 2018)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/relation"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    #: evaluates at any task.eval_ways (one relation score per (query, class) pair)
    any_eval_ways: ClassVar[bool] = True

    _target_: str = "mtl_cli.models.meta.relation.RelationNetwork"
    relation_hidden: int = field(default=8, metadata={"min": 1})
    loss: str = field(default="mse", metadata={"choices": RELATION_LOSSES})  # paper: mse


@dataclass
class ANIL:
    """Almost No Inner Loop: MAML whose inner loop adapts only the head (Raghu et al. 2020)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/anil"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = _BOTH_KINDS

    _target_: str = "mtl_cli.models.meta.anil.ANIL"
    inner_steps: int = field(default=1, metadata={"min": 0})
    inner_lr: float = field(default=0.4, metadata={"min_exclusive": 0.0})
    eval_inner_steps: int | None = field(default=3, metadata={"min": 0})  # null = inner_steps
    eval_inner_lr: float | None = field(default=None, metadata={"min_exclusive": 0.0})
    first_order: bool = False
    bn_mode: str = field(default="transductive", metadata={"choices": BN_MODES})  # as MAML


@dataclass
class Reptile:
    """Reptile: move the initialisation towards each task's SGD-adapted weights (Nichol et al. 2018)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/reptile"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = _BOTH_KINDS

    _target_: str = "mtl_cli.models.meta.reptile.Reptile"
    inner_steps: int = field(default=5, metadata={"min": 0})  # SGD steps on the support
    inner_lr: float = field(default=0.02, metadata={"min_exclusive": 0.0})  # inner SGD rate
    eval_inner_steps: int | None = field(default=50, metadata={"min": 0})  # null = inner_steps
    eval_inner_lr: float | None = field(default=None, metadata={"min_exclusive": 0.0})
    bn_mode: str = field(default="transductive", metadata={"choices": BN_MODES})  # as MAML


@dataclass
class CNP:
    """Conditional neural process: mean-aggregated support encoding, Gaussian decoder (Garnelo et al. 2018)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/cnp"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")

    _target_: str = "mtl_cli.models.meta.cnp.CNP"
    # the official notebook's sizes; the last encoder size is r's, the decoder's output layer
    # (2: mu and sigma, or `ways` logits) is added
    encoder_sizes: list[int] = field(default_factory=lambda: [128, 128, 128, 128])
    decoder_sizes: list[int] = field(default_factory=lambda: [128, 128])
    aggregation: str = field(default="mean", metadata={"choices": ["mean"]})  # the paper's only one
    min_sigma: float = field(default=0.1, metadata={"min_exclusive": 0.0, "max": 0.99})
    encoder: str = field(default="auto", metadata={"choices": ["auto", "flatten", "backbone"]})


@dataclass
class InContextTransformer:
    """Transformer in-context learner over (x, y) tokens, queries masked apart (Garg et al. 2022)."""

    group: ClassVar[str] = "model"
    name: ClassVar[str] = "meta/transformer"
    families: ClassVar[tuple[str, ...]] = ("meta",)
    kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")

    _target_: str = "mtl_cli.models.meta.transformer.InContextTransformer"
    # Garg et al. 2022's standard GPT-2: 256 wide, 8 heads, 12 layers, 4x feed-forward, no dropout
    d_model: int = field(default=256, metadata={"min": 1})
    heads: int = field(default=8, metadata={"min": 1})
    layers: int = field(default=12, metadata={"min": 1})
    feedforward: int = field(default=1024, metadata={"min": 1})
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.99})
    norm_first: bool = True  # pre-norm with a final LayerNorm, as GPT-2
    encoder: str = field(default="auto", metadata={"choices": ["auto", "flatten", "backbone"]})
