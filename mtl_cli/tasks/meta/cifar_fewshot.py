"""Few-shot CIFAR-100: CIFAR-FS (Bertinetto et al. 2019) and FC100 (Oreshkin et al. 2018)."""

from __future__ import annotations

import numpy as np
import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MetaData

# CIFAR-FS (Bertinetto, Henriques, Torr & Vedaldi, "Meta-learning with differentiable closed-form
# solvers", ICLR 2019): a random 64/16/20 split of the 100 fine classes; the class lists of its
# split files (as shipped by torchmeta, assets/cifar100/cifar-fs/{train,val,test}.json).
CIFAR_FS_TRAIN: tuple[str, ...] = (
    "dolphin", "seal", "aquarium_fish", "ray", "trout", "orchid", "sunflower", "tulip", "bottle",
    "bowl", "can", "cup", "plate", "apple", "mushroom", "orange", "pear", "clock", "keyboard",
    "chair", "couch", "bee", "caterpillar", "cockroach", "bear", "lion", "tiger", "wolf", "bridge",
    "castle", "house", "road", "skyscraper", "cloud", "forest", "mountain", "elephant", "kangaroo",
    "porcupine", "possum", "raccoon", "skunk", "lobster", "spider", "boy", "girl", "dinosaur",
    "lizard", "snake", "turtle", "hamster", "mouse", "rabbit", "shrew", "squirrel", "oak_tree",
    "palm_tree", "pine_tree", "willow_tree", "bus", "train", "lawn_mower", "streetcar", "tank",
)  # fmt: skip
CIFAR_FS_VAL: tuple[str, ...] = (
    "beaver", "otter", "flatfish", "shark", "lamp", "television", "beetle", "butterfly", "sea",
    "camel", "cattle", "crab", "crocodile", "maple_tree", "motorcycle", "tractor",
)  # fmt: skip
CIFAR_FS_TEST: tuple[str, ...] = (
    "whale", "poppy", "rose", "sweet_pepper", "telephone", "bed", "table", "wardrobe", "leopard",
    "plain", "chimpanzee", "fox", "snail", "worm", "baby", "man", "woman", "bicycle",
    "pickup_truck", "rocket",
)  # fmt: skip

# FC100 (Oreshkin, Rodríguez & Lacoste, "TADAM", NeurIPS 2018): split by the 20 superclasses,
# 12/4/4 (60/20/20 fine classes), so meta-test concepts are far from meta-train ones (torchmeta
# assets/cifar100/fc100 lists; val = the remaining four superclasses).
FC100_TRAIN: tuple[str, ...] = (
    "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "reptiles", "trees", "vehicles_1", "vehicles_2",
)  # fmt: skip
FC100_VAL: tuple[str, ...] = (
    "large_carnivores", "large_omnivores_and_herbivores", "non-insect_invertebrates",
    "small_mammals",
)  # fmt: skip
FC100_TEST: tuple[str, ...] = ("aquatic_mammals", "insects", "medium_mammals", "people")


def cifar_fs_meta_classes(
    kind: str, ways: int, shots: int, queries: int, rotations: bool, meta_batch_size: int,
    eval_episodes: int, eval_seed: int, data: dict, eval_ways: int | None = None,
    eval_shots: int | None = None, eval_queries: int | None = None,
) -> MetaData:  # fmt: skip
    """CIFAR-FS: 64/16/20 fine classes (Bertinetto et al. 2019), 600 32x32 RGB images each."""
    cifar = _load(data)
    names = [str(n) for n in cifar["fine_names"]]
    lists = {"train": CIFAR_FS_TRAIN, "val": CIFAR_FS_VAL, "test": CIFAR_FS_TEST}
    classes = {split: _indices(names, wanted, "fine class") for split, wanted in lists.items()}
    episodes = (ways, shots, queries, rotations, eval_ways, eval_shots, eval_queries)
    return _meta(cifar, classes, "cifar_fs", episodes, meta_batch_size, eval_episodes, eval_seed)


def fc100_meta_classes(
    kind: str, ways: int, shots: int, queries: int, rotations: bool, meta_batch_size: int,
    eval_episodes: int, eval_seed: int, data: dict, eval_ways: int | None = None,
    eval_shots: int | None = None, eval_queries: int | None = None,
) -> MetaData:  # fmt: skip
    """FC100: the fine classes of 12/4/4 superclasses (Oreshkin et al. 2018), 60/20/20 classes."""
    cifar = _load(data)
    coarse_names = [str(n) for n in cifar["coarse_names"]]
    lists = {"train": FC100_TRAIN, "val": FC100_VAL, "test": FC100_TEST}
    classes = {}
    for split, wanted in lists.items():
        supers = _indices(coarse_names, wanted, "superclass")
        classes[split] = np.flatnonzero(np.isin(cifar["coarse"], supers))
    episodes = (ways, shots, queries, rotations, eval_ways, eval_shots, eval_queries)
    return _meta(cifar, classes, "fc100", episodes, meta_batch_size, eval_episodes, eval_seed)


def _load(data: dict) -> dict:
    from mtl_cli.data.cifar100 import load_cifar100

    try:
        return load_cifar100(
            root=data.get("root"), download=bool(data.get("download")),
            cache_dir=data.get("cache_dir"),
        )  # fmt: skip
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from None


def _indices(names: list[str], wanted, what: str) -> np.ndarray:
    missing = [w for w in wanted if w not in names]
    if missing:
        raise UserError(f"CIFAR-100 meta: no {what} '{missing[0]}' in the archive's label names")
    return np.array(sorted(names.index(w) for w in wanted), dtype=np.int64)


def _meta(cifar, classes, split_name, episodes, meta_batch_size, eval_episodes, eval_seed):
    """MetaData over `classes`; `episodes` = (ways, shots, queries, rotations, eval_ways,
    eval_shots, eval_queries) as `meta_samplers` takes them."""
    from mtl_cli.tasks.common import meta_samplers

    images = torch.from_numpy(cifar["images"])  # uint8 [100, 600, 3, 32, 32]
    samplers = meta_samplers(images, classes, *episodes)
    return MetaData(
        kind="classification",
        input_shape=tuple(int(s) for s in images.shape[2:]),
        ways=int(episodes[0]),
        samplers=samplers,
        meta_batch_size=int(meta_batch_size),
        eval_episodes=int(eval_episodes),
        eval_seed=int(eval_seed),
        info={
            "split_by": split_name,
            "splits": {k: [str(cifar["fine_names"][i]) for i in v] for k, v in classes.items()},
            "classes": {k: len(v) for k, v in classes.items()},
        },
    )
