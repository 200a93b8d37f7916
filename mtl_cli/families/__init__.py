"""Task families and their facts, in one place (no torch here: the CLI's pre-flight reads them).

Everything the runner, the config checks, the launcher and the report need to know about a family
is a field of its `FamilyFacts`; no other module matches family names. The implementation class is
imported lazily, so `mtl list` and the pre-flight never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module

#: dense scene understanding: each per-pixel task's metrics, in report order, the headline first
#: (computed in mtl_cli.dense_metrics; conventions in docs/dense.md)
DENSE_TASK_METRICS: dict[str, tuple[str, ...]] = {
    "segmentation": ("miou", "pixel_accuracy"),
    "depth": ("abs_error", "rel_error"),
    "normals": (
        "mean_angle_error",
        "median_angle_error",
        "within_11_25",
        "within_22_5",
        "within_30",
    ),
}
DENSE_METRIC_NAMES = tuple(m for names in DENSE_TASK_METRICS.values() for m in names)
KINDS = ("classification", "regression", "dense")


@dataclass(frozen=True)
class FamilyFacts:
    """What the rest of mtl_cli knows about one task family (CS330 lecture 2)."""

    name: str
    #: "module:Class" of the Family implementation (imported only when a run is built)
    implementation: str
    #: aggregate metrics by task kind; the first is what `select_metric=auto` picks
    metrics: dict[str, tuple[str, ...]]
    #: per-task metrics Δm averages, by task kind (empty: every per-task metric but the loss)
    delta_m_metrics: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: all tasks read one shared batch (p(x) shared): `rep_grad` possible, task sampling is not
    shared_batch: bool = False
    #: one objective per step (meta-learning: the mean query loss); only single-objective losses
    single_objective: bool = False
    #: the model choice that trains each task alone: the report's Δm baseline (None: no baseline)
    baseline_model: str | None = "independent"
    #: the Family has `pictures(model, count)`: `mtl plot` draws inputs, truths and predictions
    pictures: bool = False

    def metrics_of(self, kind: str | None) -> tuple[str, ...]:
        """Aggregate metric names for tasks of `kind` (None: classification)."""
        return self.metrics[kind or "classification"]

    def default_metric(self, kind: str | None) -> str:
        """The metric `trainer.select_metric=auto` picks."""
        return self.metrics_of(kind)[0]

    def delta_m_metrics_any_kind(self) -> tuple[str, ...] | None:
        """Per-task metrics that enter Δm whatever the kind (None: every one but the loss)."""
        names = [m for kind in KINDS for m in self.delta_m_metrics.get(kind, ())]
        return tuple(dict.fromkeys(names)) or None

    def delta_m_metrics_of(self, kind: str | None) -> tuple[str, ...]:
        """Per-task metrics that enter Δm (empty tuple: every per-task metric but the loss)."""
        return self.delta_m_metrics.get(kind or "classification", ())


FAMILIES: dict[str, FamilyFacts] = {
    facts.name: facts
    for facts in (
        FamilyFacts(
            name="multitask",
            implementation="mtl_cli.families.multitask:MultiTaskFamily",
            metrics={"classification": ("accuracy", "loss"), "regression": ("mse",)},
            delta_m_metrics={"classification": ("accuracy",), "regression": ("mse",)},
        ),
        FamilyFacts(
            name="multilabel",
            implementation="mtl_cli.families.multilabel:MultiLabelFamily",
            metrics={
                "classification": (
                    "map",
                    "macro_f1",
                    "micro_f1",
                    "subset_accuracy",
                    "hamming_loss",
                    "loss",
                )
            },
            # per-label average precision: threshold-free, defined whenever a label has positives
            delta_m_metrics={"classification": ("ap",)},
            shared_batch=True,
        ),
        FamilyFacts(
            name="meta",
            implementation="mtl_cli.families.meta:MetaFamily",
            metrics={"classification": ("accuracy", "loss"), "regression": ("mse",)},
            single_objective=True,
            baseline_model=None,
        ),
        FamilyFacts(
            name="dense",
            implementation="mtl_cli.families.dense:DenseFamily",
            # "loss" (the mean task loss on val) selects by default: the tasks' metrics have no
            # common scale; each task's metrics are also aggregate keys (mtl_cli.dense_metrics)
            metrics={"dense": ("loss", *DENSE_METRIC_NAMES)},
            delta_m_metrics={"dense": DENSE_METRIC_NAMES},
            shared_batch=True,
            pictures=True,
        ),
    )
}


def family_facts(name: str) -> FamilyFacts:
    """The facts of family `name` (KeyError with the allowed names otherwise)."""
    try:
        return FAMILIES[str(name)]
    except KeyError:
        raise KeyError(f"family: unknown '{name}'; allowed: {', '.join(FAMILIES)}") from None


def family_class(name: str) -> type:
    """The Family class that implements family `name`."""
    module, _, cls = family_facts(name).implementation.partition(":")
    return getattr(import_module(module), cls)
