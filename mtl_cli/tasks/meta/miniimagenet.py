"""miniImageNet few-shot classification with the split of Ravi & Larochelle (ICLR 2017).

miniImageNet (Vinyals et al. 2016) holds 100 ImageNet classes of 600 images each; Ravi &
Larochelle's split files `train.csv`, `val.csv`, `test.csv` (header `filename,label`) give 64 / 16
/ 20 classes, and their release stores the images, resized to 84x84, in one `images/` folder. No
download (there is no stable, checksummed official host): docs/data/own_data.md says where the
files come from and how to lay them out.
"""

from __future__ import annotations

from mtl_cli.data.image_folders import resolve_root
from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MetaData
from mtl_cli.tasks.common import SPLITS
from mtl_cli.tasks.meta.folders import episode_data, episode_options, read_split_files

#: classes per split in Ravi & Larochelle 2017
SPLIT_CLASSES = {"train": 64, "val": 16, "test": 20}


def miniimagenet_meta_classes(
    kind: str,
    ways: int,
    shots: int,
    queries: int,
    rotations: bool,
    meta_batch_size: int,
    eval_episodes: int,
    eval_seed: int,
    root: str | None,
    image_size,
    channels: int,
    images_per_class: int,
    check_counts: bool,
    data: dict,
    eval_ways: int | None = None,
    eval_shots: int | None = None,
    eval_queries: int | None = None,
) -> MetaData:
    """Episodes over `root/{train,val,test}.csv` with images in `root/images/` (or
    `root/<label>/`); with `check_counts`, the 64/16/20 classes are checked."""
    base = resolve_root(root, data, "miniImageNet")
    if data.get("download"):
        raise UserError(
            "data.download: miniImageNet is not downloaded (no stable, checksummed official "
            "host); get it as docs/data/own_data.md says and set data.download=false"
        )
    for split in SPLITS:
        if not (base / f"{split}.csv").is_file():
            raise UserError(
                f"{base / f'{split}.csv'}: not found; miniImageNet needs Ravi & Larochelle's "
                f"train.csv, val.csv, test.csv and images/ in {base} (docs/data/own_data.md)"
            )
    classes = read_split_files(base, {s: f"{s}.csv" for s in SPLITS})
    if check_counts:
        for split, expected in SPLIT_CLASSES.items():
            if len(classes[split]) != expected:
                raise UserError(
                    f"{base / f'{split}.csv'}: {len(classes[split])} classes; miniImageNet's "
                    f"{split} split has {expected} (Ravi & Larochelle 2017); pass "
                    "task.check_counts=false to use other split files"
                )
    episodes = episode_options(
        ways, shots, queries, rotations, meta_batch_size, eval_episodes, eval_seed, eval_ways,
        eval_shots, eval_queries,
    )  # fmt: skip
    return episode_data(
        base, classes, episodes, image_size, channels, images_per_class, data,
        {"split_by": "ravi_larochelle"},
    )  # fmt: skip
