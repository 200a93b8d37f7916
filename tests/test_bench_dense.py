"""`python -m benchmarks dense` at a tiny size: it is registered and prints the rows it promises."""

from __future__ import annotations

import re

from benchmarks.__main__ import BENCHMARKS
from benchmarks.__main__ import main as bench_main
from benchmarks.weighting import GRADIENT_METHODS
from mtl_cli.registry import schema_choices


def test_the_dense_bench_prints_the_runner_ratio_and_every_method(capsys, monkeypatch):
    assert BENCHMARKS["dense"] == "benchmarks.dense"
    monkeypatch.setenv("MTL_BENCH_QUICK", "1")
    bench_main(["dense"])
    out = capsys.readouterr().out
    ratio = re.search(r"runner ([\d.]+) ms/step, ratio ([\d.]+) \(goal <= 1.03\)", out)
    assert ratio and float(ratio.group(1)) > 0 and float(ratio.group(2)) > 0
    rows = dict(re.findall(r"^\| (\w+) \| (.*) \|$", out, flags=re.M))
    for choice in schema_choices("loss"):
        cells = [c.strip() for c in rows[choice.name].split("|")]
        assert float(cells[0]) > 0  # step / equal
        if choice.name in GRADIENT_METHODS:  # rep_grad cells filled, speed-up "1.23x"
            assert float(cells[1]) > 0 and cells[2].endswith("x")
        else:
            assert cells[1:] == ["", ""]
    assert rows["equal"].split("|")[0].strip() == "1.00"
