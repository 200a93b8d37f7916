"""Office-31 and Office-Home as multi-task classification: one task per domain (no download).

Office-31 (Saenko, Kulis, Fritz & Darrell, ECCV 2010, "Adapting Visual Category Models to New
Domains"): 31 office object classes photographed in 3 domains, amazon (2817 images), dslr (498),
webcam (795); the released archive holds `<domain>/images/<class>/<image>.jpg`.
Office-Home (Venkateswara, Eusebio, Chakraborty & Panchanathan, CVPR 2017, "Deep Hashing Network
for Unsupervised Domain Adaptation"): 65 classes in 4 domains, Art (2427), Clipart (4365),
Product (4439), Real World (4357); the archive holds `<Domain>/<class>/<image>.jpg`.
As multi-task benchmarks (LibMTL, Lin & Zhang 2023) each domain is a task, split 60/20/20 per
domain, at 224x224 for a ResNet-18; the defaults here are 64x64 so a CPU run is practical.
"""

from __future__ import annotations

from collections.abc import Sequence

from mtl_cli.data.image_folders import resolve_root, subfolders
from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiTaskData
from mtl_cli.tasks.multitask.folders import choose, folder_task_data

#: task name -> domain folder name, and the classes per domain
OFFICE31_DOMAINS = {"amazon": "amazon", "dslr": "dslr", "webcam": "webcam"}
OFFICE31_CLASSES = 31
OFFICE_HOME_DOMAINS = {
    "art": "Art",
    "clipart": "Clipart",
    "product": "Product",
    "real_world": "Real World",
}
OFFICE_HOME_CLASSES = 65


def office31_tasks(
    root: str | None,
    domains: Sequence[str],
    image_size,
    channels: int,
    split_fractions: Sequence[float],
    split_seed: int,
    data: dict,
) -> MultiTaskData:
    """Office-31: tasks amazon, dslr, webcam (or `domains`), 31 classes each."""
    return _office_tasks(
        "Office-31", OFFICE31_DOMAINS, OFFICE31_CLASSES, root, domains, image_size, channels,
        split_fractions, split_seed, data,
    )  # fmt: skip


def office_home_tasks(
    root: str | None,
    domains: Sequence[str],
    image_size,
    channels: int,
    split_fractions: Sequence[float],
    split_seed: int,
    data: dict,
) -> MultiTaskData:
    """Office-Home: tasks art, clipart, product, real_world (or `domains`), 65 classes each."""
    return _office_tasks(
        "Office-Home", OFFICE_HOME_DOMAINS, OFFICE_HOME_CLASSES, root, domains, image_size,
        channels, split_fractions, split_seed, data,
    )  # fmt: skip


def _office_tasks(
    dataset: str,
    domain_folders: dict[str, str],
    num_classes: int,
    root: str | None,
    domains: Sequence[str],
    image_size,
    channels: int,
    split_fractions: Sequence[float],
    split_seed: int,
    data: dict,
) -> MultiTaskData:
    base = resolve_root(root, data, dataset)
    if data.get("download"):
        raise UserError(
            f"data.download: {dataset} is not downloaded (no stable, checksummed official host); "
            "get it as docs/data/own_data.md says and set data.download=false"
        )
    names = choose(list(domains), list(domain_folders), "task.domains", f"{dataset} domain")
    task_dirs, class_dirs = {}, {}
    expected = f"{base}/{{{','.join(domain_folders.values())}}}/"
    for name in names:
        folder = base / domain_folders[name]
        if not folder.is_dir():
            raise UserError(
                f"{folder}: {dataset} domain folder not found; expected {expected}"
                f"{'images/' if dataset == 'Office-31' else ''}<class>/<image>"
            )
        classes = folder / "images" if (folder / "images").is_dir() else folder
        found = subfolders(classes)
        if len(found) != num_classes:
            raise UserError(
                f"{classes}: {len(found)} class folders; {dataset} has {num_classes} per domain "
                f"(expected {expected}{'images/' if dataset == 'Office-31' else ''}<class>/<image>)"
            )
        task_dirs[name], class_dirs[name] = folder, classes
    first = sorted(p.name for p in subfolders(class_dirs[names[0]]))
    for name in names[1:]:
        other = sorted(p.name for p in subfolders(class_dirs[name]))
        if other != first:
            odd = sorted(set(other) ^ set(first))[0]
            raise UserError(
                f"{class_dirs[name]}: class '{odd}' is not in every {dataset} domain; "
                f"the domains share their {num_classes} classes"
            )
    return folder_task_data(
        base, task_dirs, image_size, channels, split_fractions, split_seed, 1, data, class_dirs
    )
