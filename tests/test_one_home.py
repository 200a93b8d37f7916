"""One home per choice: a method, model or backbone is named only by its schema entry (and by
family facts or presets that choose it); the loop, the report and the CLI never match it by name.
The recipe that keeps it so is docs/extending.md."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mtl_cli
from mtl_cli.registry import CONF_DIR, schema_choices

PACKAGE = Path(mtl_cli.__file__).parent
GROUPS = ("loss", "model", "backbone", "optim")
#: where a choice's name may appear as a string: its schema, and the families' facts
#: (e.g. the baseline model of Δm)
ALLOWED = {PACKAGE / "schemas", PACKAGE / "families" / "__init__.py"}


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    }


def _allowed(path: Path) -> bool:
    return any(path == a or a in path.parents for a in ALLOWED)


@pytest.mark.parametrize("group", GROUPS)
def test_no_module_special_cases_a_choice_by_name(group):
    names = {c.name for c in schema_choices(group)}
    assert names
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if _allowed(path):
            continue
        found = _string_constants(path) & names
        if found:
            offenders[str(path.relative_to(PACKAGE))] = sorted(found)
    assert offenders == {}


@pytest.mark.parametrize("choice", schema_choices("loss"), ids=lambda c: c.name)
def test_a_loss_method_is_its_module_plus_one_schema_entry(choice):
    """The recipe's promise: the implementation named by `_target_` and the schema dataclass."""
    module = choice.schema._target_.rsplit(".", 1)[0]
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    assert path.is_file() and path.parent == PACKAGE / "loss"
    assert not (CONF_DIR / "loss").exists()  # no stub YAML repeats the schema


def _identifiers(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update(alias.name.rsplit(".", 1)[-1] for alias in node.names)
    return names


@pytest.mark.parametrize("choice", schema_choices("loss"), ids=lambda c: c.name)
def test_no_code_outside_a_methods_module_and_schema_uses_its_class(choice):
    """Nothing in the loop, the report or the CLI refers to a method: `worst_case` is
    mtl_cli/loss/worst_case.py plus `WorstCase` in mtl_cli/schemas/loss.py, and so is every other."""
    module, cls = choice.schema._target_.rsplit(".", 1)
    home = {PACKAGE.parent / (module.replace(".", "/") + ".py"), PACKAGE / "schemas" / "loss.py"}
    users = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p not in home and cls in _identifiers(p)
    ]
    assert users == []
