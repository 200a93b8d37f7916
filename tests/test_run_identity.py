"""What makes a run the same run (resume, resume_sweep), the shared override helpers, and the
package's import graph."""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import pkgutil
from pathlib import Path

import pytest

import mtl_cli
from mtl_cli import cli
from mtl_cli.checkpoint_compare import RUN_CONTROL_KEYS, plain, refuse_existing_run, run_identity
from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.overrides import key, merge_overrides, quote, run_dir_override
from tests.conftest import mtl, tiny, tiny_cli

# ------------------------------------------------------------------ the import graph


def _modules() -> dict[str, Path]:
    found = {"mtl_cli": Path(mtl_cli.__file__)}
    for info in pkgutil.walk_packages(mtl_cli.__path__, "mtl_cli."):
        module = importlib.import_module(info.name)  # every module imports
        if module.__file__ and module.__file__.endswith(".py"):
            found[info.name] = Path(module.__file__)
    return found


def _imports(path: Path, package: str, top_level_only: bool) -> set[str]:
    """mtl_cli modules imported by the file at `path` (module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = []
    if top_level_only:
        stack = list(tree.body)
        while stack:  # module level, including under if/try/with, but not in defs or classes
            node = stack.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            nodes.append(node)
            fields = ("body", "orelse", "finalbody", "handlers")
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                fields = ("orelse",)  # typing-only imports do not run
            for field in fields:
                stack.extend(getattr(node, field, []) or [])
    else:
        nodes = list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return {n for n in names if n == "mtl_cli" or n.startswith("mtl_cli.")}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {
            m for m in _imports(path, package, top_level_only) if m in modules and m != name
        }
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_module_imports_and_module_level_imports_have_no_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the detector
    graph = _graph(top_level_only=True)
    assert "mtl_cli.cli" in graph and "mtl_cli.overrides" in graph
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_nothing_imports_the_cli_but_the_entry_point():
    """cli.py is the top layer: no module reaches back into it, not even inside a function."""
    graph = _graph(top_level_only=False)
    users = sorted(m for m, deps in graph.items() if "mtl_cli.cli" in deps)
    assert users == ["mtl_cli.__main__"]


# ------------------------------------------------------------------ override helpers


PATHS = [
    "outputs/multirun/2024-01-01_00-00-00_000000",
    "/tmp/with space/run",
    "it's",
    'say "hi"',
    "back\\slash",
    "two\\\\back",
    "ends with\\",
    "quote\\'mix",
    "c:\\dir\\",
    "a,b=c[d]",
    "${now:%H}",
]


@pytest.mark.parametrize("path", PATHS)
def test_quote_round_trips_through_hydras_parser(path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([f"hydra.run.dir={quote(path)}"])[0]
    assert parsed.value() == path
    assert run_dir_override(["seed=1", f"hydra.run.dir={quote(path)}"]) == Path(path)


def test_override_keys_and_merging():
    assert [key(o) for o in ("+a.b=1", "++c=2", "~d", "e/f=g")] == ["a.b", "c", "d", "e/f"]
    assert merge_overrides(["a=1", "b=2", "+c=3"], ["c=4", "a=5"]) == ["b=2", "c=4", "a=5"]
    assert run_dir_override(["seed=1"]) is None
    assert (
        run_dir_override(["hydra.run.dir="]) is None
        and run_dir_override(["hydra.run.dir=''"]) is None
    )
    assert run_dir_override(["+hydra.run.dir='a b'"]) == Path("a b")
    assert run_dir_override(["hydra.run.dir=x", "hydra.run.dir=y"]) == Path("y")


def test_one_plain_and_one_refusal_are_shared():
    from mtl_cli import run, sweep_resume

    assert run._plain is plain
    assert not hasattr(sweep_resume, "_quote") and not hasattr(cli, "_quote")
    assert not hasattr(cli, "merge_overrides") or cli.merge_overrides is merge_overrides


def test_refuse_existing_run(tmp_path):
    refuse_existing_run(tmp_path, resume=False)  # no checkpoint: nothing to refuse
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/last.pt").write_bytes(b"")
    refuse_existing_run(tmp_path, resume=True)
    with pytest.raises(UserError, match=rf"trainer.resume=false but {tmp_path} already holds"):
        refuse_existing_run(tmp_path, resume=False)


# ------------------------------------------------------------------ the run identity


def test_run_identity_has_the_trainer_without_run_control_keys(tmp_path):
    identity = run_identity(compose(tiny(tmp_path)))
    assert set(identity) == {"task", "model", "backbone", "loss", "optim", "seed", "trainer"}
    assert identity["trainer"]["batch_size"] == 8 and identity["trainer"]["eval_every"] == 3
    assert not set(RUN_CONTROL_KEYS) & set(identity["trainer"])
    assert {"task_sampling", "tasks_per_step", "grad_clip"} <= set(identity["trainer"])
    more = run_identity(compose(tiny(tmp_path, "trainer.steps=99", "trainer.threads=2")))
    assert more == identity


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A debug run made by `mtl train` that stopped at step 3 (of the debug trainer's 6)."""
    root = tmp_path_factory.mktemp("identity")
    run = root / "run"
    mtl("train", *tiny_cli("trainer.steps=3", f"hydra.run.dir={run}"), cwd=root, check=True)
    return run


@pytest.mark.parametrize(
    "override", ["trainer.batch_size=4", "trainer.eval_every=2", "trainer.task_sampling=uniform"]
)
def test_resuming_with_another_trainer_setting_is_refused(
    stopped_run, override, capsys, monkeypatch
):
    before = snapshot(stopped_run)
    monkeypatch.setattr(cli, "_run", lambda *a: pytest.fail("Hydra was launched"))
    with pytest.raises(SystemExit) as info:
        cli.main(["train", f"hydra.run.dir={stopped_run}", override])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "\n" not in err, err
    assert err.startswith(f"mtl: error: {stopped_run}: cannot resume")
    assert override.split("=")[0] in err
    assert snapshot(stopped_run) == before


def test_train_refuses_a_checkpoint_of_another_batch_size(tmp_path):
    from mtl_cli.run import train

    train(compose(tiny(tmp_path / "run", "trainer.steps=3")))
    with pytest.raises(UserError, match="trainer.batch_size: 8 in the checkpoint vs 4 now"):
        train(compose(tiny(tmp_path / "run", "trainer.batch_size=4")))
    with pytest.raises(UserError, match="trainer.grad_clip"):
        train(compose(tiny(tmp_path / "run", "trainer.grad_clip=1.0")))


def test_resuming_for_more_steps_continues_the_run(tmp_path):
    run = tmp_path / "run"
    mtl("train", *tiny_cli("trainer.steps=3", f"hydra.run.dir={run}"), cwd=tmp_path, check=True)
    result = mtl(
        "train", f"hydra.run.dir={run}", "trainer.steps=12", "trainer.threads=1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "finished"
    assert (summary["resumed_from"], summary["step"]) == (3, 12)


def test_finished_summary_does_not_skip_a_job_of_another_trainer_config(tmp_path):
    from mtl_cli.run import train
    from mtl_cli.sweep_resume import finished_summary

    train(compose(tiny(tmp_path)))
    assert finished_summary(compose(tiny(tmp_path))) is not None
    assert finished_summary(compose(tiny(tmp_path, "trainer.threads=2"))) is not None
    assert finished_summary(compose(tiny(tmp_path, "trainer.batch_size=4"))) is None
    assert finished_summary(compose(tiny(tmp_path, "trainer.tasks_per_step=3"))) is None


def test_resume_sweep_refuses_extra_overrides_that_change_the_runs(tmp_path):
    import yaml

    from mtl_cli.sweep_resume import resume_overrides

    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
        "hydra": ["hydra.mode=MULTIRUN"], "task": ["seed=0,1", "trainer.batch_size=8"]}}}))  # fmt: skip
    for extra in ("trainer.batch_size=4", "model=mmoe", "optim.lr=0.1", "seed=3"):
        with pytest.raises(UserError, match=f"resume_sweep: '{extra}' would change"):
            resume_overrides(tmp_path, [extra])
    fine = ["trainer.batch_size=8", "trainer.steps=50", "trainer.threads=1", "device=cpu"]
    assert resume_overrides(tmp_path, fine)[-2:] == [
        "trainer.resume=true",
        f"hydra.sweep.dir={quote(str(tmp_path))}",
    ]


# ------------------------------------------------------------------ record_failure


@pytest.mark.parametrize("status", ["finished", "failed", "interrupted"])
def test_record_failure_never_overwrites_a_run_that_said_how_it_ended(tmp_path, status):
    from mtl_cli.sweep_resume import record_failure

    written = {"status": status, "error": None, "best_val": {"accuracy": 0.5}}
    (tmp_path / "metrics.json").write_text(json.dumps(written))
    record_failure(tmp_path, "hydra.sweeper.direction: wrong")
    assert json.loads((tmp_path / "metrics.json").read_text()) == written


def test_record_failure_marks_a_running_or_missing_run(tmp_path):
    from mtl_cli.sweep_resume import record_failure

    record_failure(tmp_path, "boom")
    assert json.loads((tmp_path / "metrics.json").read_text()) == {
        "status": "failed",
        "error": "boom",
    }
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "running", "step": 3}))
    record_failure(tmp_path, "boom")
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"
