"""The `mtl train` commands of docs/data/own_data.md's Tables, CelebA and CIFAR-FS/FC100 sections
run as written on files fabricated in the real formats (the Image folders section has its own
test in tests/test_folder_readers.py)."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import numpy as np

from mtl_cli.config import compose
from mtl_cli.run import train
from tests.test_celeba_cifar import cifar_pickles, write_celeba, write_cifar
from tests.test_table_readers import write_csv

#: CelebA's 40 attribute names, in list_attr_celeba.txt's order (the docs name real ones)
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes "
    "No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling "
    "Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young"
).split()
DOC = Path(__file__).resolve().parents[1] / "docs" / "data" / "own_data.md"
SECTIONS = {"Tables (CSV, Parquet)": 3, "CelebA": 2, "CIFAR-FS and FC100": 3}
#: tiny runs: appended after each documented command (later overrides win)
TINY = {
    "multitask/table": ["backbone.hidden=[8]"],
    "multilabel/celeba": ["task.image_size=16", "backbone.channels=[4,8]",
                          "backbone.fc_features=16"],
    "meta/": ["task.queries=1", "task.eval_episodes=4", "task.meta_batch_size=2",
              "backbone.hidden_channels=4"],
}  # fmt: skip


def section_commands(title: str) -> list[list[str]]:
    """The `mtl train` lines of section `## <title>`, split as a shell would, without `mtl train`."""
    text = DOC.read_text(encoding="utf-8")
    assert f"\n## {title}\n" in text, f"{DOC}: no section '## {title}'"
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln.strip() for ln in section.splitlines() if ln.strip().startswith("mtl train ")]
    return [shlex.split(ln)[2:] for ln in lines]


def write_tables(folder: Path) -> Path:
    """users.csv and users.parquet in the documented columns: 2 users x 20 complete rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    header = ["user", "age", "income", "device", "label", "spend", "split"]
    rows = []
    for i in range(40):
        user = ["ann", "bob"][i % 2]
        age = int(rng.integers(18, 70))
        income = round(float(rng.normal(50, 10)), 1)
        split = ["train"] * 6 + ["val", "test"]
        rows.append([user, age, income, ["phone", "laptop", "tablet"][i % 3],
                     ["ham", "spam"][(i // 2) % 2], round(income / 4, 2), split[(i // 2) % 8]])  # fmt: skip
    write_csv(folder / "users.csv", header, rows)
    columns = {name: [row[k] for row in rows] for k, name in enumerate(header)}
    pq.write_table(pa.table(columns), folder / "users.parquet")
    return folder


def test_documented_commands_of_the_table_celeba_and_cifar_sections_run(tmp_path, monkeypatch):
    import mtl_cli.data.cifar100 as cifar100

    cifar_dir = write_cifar(tmp_path / "cifar", {
        f"cifar-100-python/{k}": v for k, v in cifar_pickles(5, 2).items()
    }).parent  # 7 images per class: 5 shots + 1 query fit  # fmt: skip
    places = {
        "/path/to/tables": write_tables(tmp_path / "tables"),
        "/path/to/celeba": write_celeba(tmp_path / "celeba", 14, True, CELEBA_ATTRIBUTES),
        "/path/to/data": cifar_dir,
    }
    # `data.download=true` without data.root: found through $MTL_DATA_DIR, never fetched
    monkeypatch.setenv("MTL_DATA_DIR", str(cifar_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def no_network(*args, **kwargs):
        raise AssertionError("the documented CIFAR command tried to download")

    assert len(CELEBA_ATTRIBUTES) == 40
    monkeypatch.setattr(cifar100, "download_first", no_network)
    number = 0
    for title, count in SECTIONS.items():
        commands = section_commands(title)
        assert len(commands) == count, (title, commands)
        for args in commands:
            for placeholder, path in places.items():
                args = [a.replace(placeholder, str(path)) for a in args]
            task = next(a.split("=", 1)[1] for a in args if a.startswith("task="))
            tiny = next(v for k, v in TINY.items() if task.startswith(k))
            number += 1
            cfg = compose([*args, *tiny, "trainer=debug", "device=cpu", "trainer.threads=1",
                           "trainer.diagnostics=false", f"paths.output_dir={tmp_path / str(number)}",
                           f"data.cache_dir={tmp_path / 'cache'}"])  # fmt: skip
            out = train(cfg)
            assert out["status"] == "finished", (title, args)
            values = [v for v in out["test"].values() if isinstance(v, float)]
            assert values and all(math.isfinite(v) for v in values), (title, args, out["test"])
