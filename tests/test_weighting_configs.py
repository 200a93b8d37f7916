"""Every `loss` config composes with its schema and instantiates the method it names."""

import dataclasses
import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

import mtl_cli.schemas.loss as loss_schemas
from mtl_cli.weighting.base import GradientWeighting, Weighting

LOSS_DIR = Path(loss_schemas.__file__).parents[1] / "conf" / "loss"
SCHEMAS = {
    cls.name: cls
    for cls in vars(loss_schemas).values()
    if dataclasses.is_dataclass(cls) and "name" in vars(cls)
}
TASK_NAMES = ["greek", "cyrillic", "gothic"]


@pytest.fixture
def config_dir(tmp_path):
    store = ConfigStore.instance()
    for cls in SCHEMAS.values():
        store.store(group=f"schema/{cls.group}", name=cls.name, node=cls)
    (tmp_path / "loss").symlink_to(LOSS_DIR)
    (tmp_path / "config.yaml").write_text("defaults:\n  - loss: equal\n  - _self_\n")
    GlobalHydra.instance().clear()
    yield tmp_path
    GlobalHydra.instance().clear()


def _compose(config_dir, overrides):
    with initialize_config_dir(str(config_dir), version_base="1.3"):
        return compose("config", overrides=overrides)


def test_one_yaml_per_schema_with_a_description_line():
    yamls = {p.stem for p in LOSS_DIR.glob("*.yaml")}
    assert yamls == set(SCHEMAS)
    for name in yamls:
        first = (LOSS_DIR / f"{name}.yaml").read_text().splitlines()[0]
        assert first.startswith("# ") and first.endswith(")"), name


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_config_composes_and_instantiates(config_dir, name):
    cfg = _compose(config_dir, [f"loss={name}"])
    method = instantiate(cfg.loss, num_tasks=3, task_names=TASK_NAMES, steps_per_epoch=10)
    assert isinstance(method, Weighting)
    assert type(method).__module__ + "." + type(method).__name__ == cfg.loss._target_
    # the constructor takes exactly the schema's fields plus the trainer's runtime kwargs
    accepted = set(inspect.signature(type(method)).parameters)
    fields = {f.name for f in dataclasses.fields(SCHEMAS[name])} - {"_target_"}
    assert accepted == fields | {"num_tasks", "task_names", "steps_per_epoch"}
    assert isinstance(method, GradientWeighting) == ("rep_grad" in cfg.loss)


def test_overrides_reach_the_method(config_dir):
    cfg = _compose(config_dir, ["loss=cagrad", "loss.c=0.7", "loss.rescale=2"])
    method = instantiate(cfg.loss, num_tasks=2, task_names=TASK_NAMES[:2], steps_per_epoch=5)
    assert (method.c, method.rescale) == (0.7, 2)
    cfg = _compose(config_dir, ["loss=static", "+loss.weights.cyrillic=2.5"])
    method = instantiate(cfg.loss, num_tasks=3, task_names=TASK_NAMES, steps_per_epoch=5)
    assert method.task_weights.tolist() == [1.0, 2.5, 1.0]


def test_typed_schema_rejects_a_wrong_type_and_unknown_key(config_dir):
    with pytest.raises(Exception, match="temperature"):
        _compose(config_dir, ["loss=dwa", "loss.temperature=hot"])
    with pytest.raises(Exception, match="alpah"):
        _compose(config_dir, ["loss=gradnorm", "loss.alpah=1.0"])


@pytest.mark.parametrize(
    ("name", "key", "module_attr"),
    [
        ("equal", "reduction", "mtl_cli.weighting.equal.REDUCTIONS"),
        ("pcgrad", "reduction", "mtl_cli.weighting.pcgrad.REDUCTIONS"),
        ("mgda", "normalization", "mtl_cli.weighting.mgda.NORMALIZATIONS"),
        ("cagrad", "rescale", "mtl_cli.weighting.cagrad.RESCALES"),
        ("uncertainty", "variant", "mtl_cli.weighting.uncertainty.VARIANTS"),
    ],
)
def test_schema_choices_match_the_methods(name, key, module_attr):
    import importlib

    module, attr = module_attr.rsplit(".", 1)
    allowed = getattr(importlib.import_module(module), attr)
    field = next(f for f in dataclasses.fields(SCHEMAS[name]) if f.name == key)
    assert sorted(map(str, field.metadata["choices"])) == sorted(map(str, allowed))


def test_schemas_module_does_not_import_torch():
    source = Path(loss_schemas.__file__).read_text()
    assert "torch" not in source
