"""Meta-learning speed: episodes sampled per second, and seconds per meta-step of each learner.

Episodes: 5-way 1-shot 15-query, meta-batch 32, from the embedded Hershey glyphs (all 31
alphabets, uint8 [C, 20, 1, 28, 28] in memory), with and without rotation augmentation; the family
path includes the uint8 -> float conversion. Meta-steps: one outer Adam step (forward on the
meta-batch, query loss, backward, update) of each learner on the same conv4 backbone and one
fixed, pre-sampled meta-batch. One CPU thread; the median of several repeats.
"""

from __future__ import annotations

import tempfile
from functools import partial

import torch

from benchmarks.common import median_time
from mtl_cli.config import compose
from mtl_cli.run import build_family

WAYS, SHOTS, QUERIES, META_BATCH = 5, 1, 15, 32
SAMPLE_REPEATS = 50
STEP_REPEATS = 3
#: MAML's meta-step, the figure the speed notes track: second order and first order, 1 inner step
MAML_CASES = {
    "maml (2nd order, 1 step)": ["model=meta/maml"],
    "maml (first order, 1 step)": ["model=meta/maml", "model.first_order=true"],
}


def classification_learners() -> dict[str, list[str]]:
    """Every meta-learner of the registry that does classification, at its defaults (no names:
    a learner added to the registry is timed here too)."""
    from mtl_cli.registry import choices

    return {
        c.name.removeprefix("meta/"): [f"model={c.name}"]
        for c in choices("model")
        if c.name.startswith("meta/") and "classification" in c.fact("kinds", ())
    }


def _config(out: str, rotations: bool, model: list[str]):
    return compose([
        f"paths.output_dir={out}", "task=meta/hershey_5w1s", f"task.ways={WAYS}",
        f"task.shots={SHOTS}", f"task.queries={QUERIES}", f"task.meta_batch_size={META_BATCH}",
        f"task.rotations={str(rotations).lower()}", "backbone=conv4", "device=cpu", *model,
    ])  # fmt: skip


def sampling_rates(out: str) -> list[tuple[str, float, float]]:
    """(case, ms per meta-batch, episodes per second) for the raw sampler and the family path."""
    rows = []
    for rotations in (False, True):
        family = build_family(_config(out, rotations, ["model=meta/protonet"]), torch.device("cpu"))
        sampler = family.data.samplers["train"]
        generator = torch.Generator().manual_seed(0)
        cases = {
            "sampler (uint8)": partial(sampler.sample, META_BATCH, generator),
            "family (uint8 -> float)": partial(family._episode, "train", META_BATCH, generator),
        }
        for name, fn in cases.items():
            seconds = median_time(fn, repeats=SAMPLE_REPEATS, warmup=3)
            label = f"{name}{', rotations' if rotations else ''}"
            rows.append((label, 1000 * seconds, META_BATCH / seconds))
    return rows


def _meta_step(model, optimizer, episode) -> None:
    """One outer update: query loss of the meta-batch, backward, Adam step."""
    sx, sy, qx, qy = episode
    optimizer.zero_grad(set_to_none=True)
    model.loss(model(sx, sy, qx), qy).backward()
    optimizer.step()


def meta_step_times(out: str, learners: dict[str, list[str]]) -> list[tuple[str, float, int]]:
    """(learner, seconds per meta-step, parameters) on one fixed meta-batch."""
    rows = []
    for name, overrides in learners.items():
        cfg = _config(out, False, overrides)
        family = build_family(cfg, torch.device("cpu"))
        torch.manual_seed(0)
        model = family.build_model(cfg.model, cfg.backbone)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        episode = family._episode("train", META_BATCH, torch.Generator().manual_seed(0))
        step = partial(_meta_step, model, optimizer, episode)
        seconds = median_time(step, repeats=STEP_REPEATS, warmup=1)
        rows.append((name, seconds, sum(p.numel() for p in model.parameters())))
    return rows


def main() -> None:
    """Print both tables (markdown)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        print(f"episodes: {WAYS}-way {SHOTS}-shot {QUERIES}-query, meta-batch {META_BATCH}")
        print("| case | ms per meta-batch | episodes/s |\n|---|--:|--:|")
        for label, ms, rate in sampling_rates(out):
            print(f"| {label} | {ms:.2f} | {rate:,.0f} |")
        print(f"\nMAML meta-step (conv4 64 channels, meta-batch {META_BATCH}, 1 thread)")
        print("| case | s per meta-step | episodes/s | x first order |\n|---|--:|--:|--:|")
        maml = meta_step_times(out, MAML_CASES)
        first_order = maml[-1][1]  # the baseline of the same run: ratios, not absolute times
        for name, seconds, _ in maml:
            print(f"| {name} | {seconds:.2f} | {META_BATCH / seconds:.1f} | "
                  f"{seconds / first_order:.2f} |")  # fmt: skip
        print("\nmeta-step of every classification learner at its defaults (same setting)")
        print("| learner | s per meta-step | episodes/s | parameters |\n|---|--:|--:|--:|")
        for name, seconds, params in meta_step_times(out, classification_learners()):
            print(f"| {name} | {seconds:.2f} | {META_BATCH / seconds:.1f} | {params:,} |")


if __name__ == "__main__":
    main()
