"""Every `loss` choice of the registry composes, instantiates the method its schema names, and
the method takes exactly the schema's fields (the run's tasks come through `setup`)."""

import dataclasses
import inspect
from pathlib import Path

import pytest
from hydra.utils import get_class, instantiate

import mtl_cli.schemas.loss as loss_schemas
from mtl_cli.config import compose
from mtl_cli.loss.base import GradientWeighting, TaskSetup, Weighting
from mtl_cli.registry import CONF_DIR, schema_choices
from mtl_cli.schemas.checks import InvalidSetting

LOSSES = {c.name: c.schema for c in schema_choices("loss")}
TASKS = TaskSetup(("greek", "cyrillic", "gothic"), steps_per_epoch=10)


def test_the_registry_lists_every_loss_schema_and_no_stub_yaml_exists():
    defined = {
        cls.name
        for cls in vars(loss_schemas).values()
        if dataclasses.is_dataclass(cls) and "name" in vars(cls)
    }
    assert set(LOSSES) == defined and len(defined) >= 12
    assert not (CONF_DIR / "loss").exists()  # the schemas are the choices: no YAML repeats them


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_config_composes_and_instantiates(name):
    cfg = compose([f"loss={name}", "paths.output_dir=."])
    method = instantiate(cfg.loss).setup(TASKS)
    assert isinstance(method, Weighting)
    assert type(method).__module__ + "." + type(method).__name__ == cfg.loss._target_
    # the constructor takes exactly the schema's fields: no run facts
    accepted = set(inspect.signature(type(method)).parameters)
    assert accepted == {f.name for f in dataclasses.fields(LOSSES[name])} - {"_target_"}
    if "rep_grad" in cfg.loss:  # only gradient methods can combine representation gradients
        assert isinstance(method, GradientWeighting)
    assert method.task_names == list(TASKS.names) and method.num_tasks == 3


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_constructor_defaults_are_the_schemas(name):
    schema = LOSSES[name]
    cls = get_class(schema._target_)
    params = inspect.signature(cls).parameters
    for f in dataclasses.fields(schema):
        if f.name != "_target_" and f.default is not dataclasses.MISSING:
            assert params[f.name].default == f.default, f.name


CHOICE_FIELDS = [
    (name, f.name, f.metadata["choices"])
    for name, schema in sorted(LOSSES.items())
    for f in dataclasses.fields(schema)
    if "choices" in f.metadata
]


@pytest.mark.parametrize(("name", "key", "allowed"), CHOICE_FIELDS)
def test_a_value_outside_the_schemas_choices_is_refused_by_the_method_too(name, key, allowed):
    cls = get_class(LOSSES[name]._target_)
    with pytest.raises(InvalidSetting, match=rf"^loss\.{key}: invalid value 'bogus'; allowed: "):
        cls(**{key: "bogus"})
    with pytest.raises(ValueError):  # Python callers may catch ValueError
        cls(**{key: "bogus"})
    cls(**{key: allowed[-1]})  # every allowed value is accepted


def test_a_range_from_the_schema_binds_the_method():
    from mtl_cli.loss.nash import NashMTL

    with pytest.raises(
        InvalidSetting, match=r"loss\.update_weights_every: 0 is below the minimum 1"
    ):
        NashMTL(update_weights_every=0)


def test_overrides_reach_the_method():
    cfg = compose(["loss=cagrad", "loss.c=0.7", "loss.rescale=2", "paths.output_dir=."])
    method = instantiate(cfg.loss).setup(TaskSetup.count(2))
    assert (method.c, method.rescale) == (0.7, 2)
    cfg = compose(["loss=static", "+loss.weights.cyrillic=2.5", "paths.output_dir=."])
    method = instantiate(cfg.loss).setup(TASKS)
    assert method.task_weights.tolist() == [1.0, 2.5, 1.0]


def test_a_method_must_be_set_up_before_it_steps_and_only_once():
    import torch

    from mtl_cli.loss.equal import Equal

    method = Equal()
    with pytest.raises(RuntimeError, match="setup"):
        method.check_step(torch.ones(2), [0, 1])
    method.setup(TaskSetup.count(2))
    with pytest.raises(RuntimeError, match="already set up"):
        method.setup(TaskSetup.count(2))


def test_typed_schema_rejects_a_wrong_type_and_unknown_key():
    from mtl_cli.errors import UserError

    with pytest.raises(UserError, match="temperature"):
        compose(["loss=dwa", "loss.temperature=hot"])
    with pytest.raises(UserError, match="alpah"):
        compose(["loss=gradnorm", "loss.alpah=1.0"])


def test_schemas_module_does_not_import_torch():
    source = Path(loss_schemas.__file__).read_text()
    assert "torch" not in source
