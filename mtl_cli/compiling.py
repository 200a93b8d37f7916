"""`trainer.compile`: torch.compile the run's model in place; fall back to eager when it cannot be.

What is compiled: the model's `__call__` (`nn.Module.compile`, in place: the module keeps its class,
its methods and its state_dict keys, so checkpoints carry no `_orig_mod.` prefix and compiled and
eager runs resume each other) and, for multi-task models, the methods the families call directly
(`forward_all`, `representation`, `head`: the multi-label family's shared batch). Losses, the
weighting methods (task-gradient matrix, solvers) and the optimizer stay eager.

Compilation is lazy: torch.compile traces and compiles at the first call of each new case (task,
train/eval mode, grad mode, shape), and AOTAutograd compiles a graph's backward at its first
backward, where it also refuses double backward. So a model that cannot be compiled fails at the
first training step or the first evaluation, not here. The trainer runs the first compiled step as
a *trial* (`ModelCompiler.trial`): if it fails with a compilation error, everything the step had
changed (run generator, torch RNGs, sampler state, weighting-method state, model buffers) is put
back, and then

- `trainer.compile=true`: the run stops with a one-line UserError naming the model;
- `trainer.compile=auto`: one warning line, the model goes back to eager (the same module and
  parameters) and the step runs again: the run is then exactly the eager run.

A compilation failure at a later step (a new recompilation) or at any evaluation is handled the
same way (a later training step is redone on the next batch; an evaluation is simply repeated).
Errors that do not come from the compiler (raised in user code, not in torch._dynamo, _inductor,
_functorch, ...) are never taken for compilation failures.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from mtl_cli.errors import UserError

log = logging.getLogger("mtl_cli")

SETTINGS = ("false", "true", "auto")
MODES = ("default", "reduce-overhead", "max-autotune")
#: methods of a multi-task model that families call besides `model(x, task)`
METHODS = ("forward_all", "representation", "head")
#: where compilation errors come from: the exception's module or the frame that raised it
COMPILER_MODULES = (
    "torch._dynamo",
    "torch._inductor",
    "torch._functorch",
    "torch._subclasses",
    "torch._higher_order_ops",
    "torch.fx",
)
_COMPILER_PATHS = tuple(os.sep + os.sep.join(m.split(".")) + os.sep for m in COMPILER_MODULES)
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep

T = TypeVar("T")


def compile_setting(value: Any) -> str:
    """`trainer.compile` as 'false' | 'true' | 'auto' (Hydra reads true/false as bools)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower()
    if isinstance(value, str) and text in SETTINGS:
        return text
    raise UserError(f"trainer.compile: invalid value '{value}'; allowed: false, true, auto")


def is_compile_error(exc: BaseException) -> bool:
    """Whether `exc` was raised by torch.compile's machinery (tracing, graph compilation, a
    compiled graph's runtime wrappers) rather than by the model's own code: its type comes from
    the compiler, or the innermost frame outside torch's general code (torch/__init__.py's
    checks, torch.nn, torch.autograd, ...) is the compiler's, not the model's or mtl_cli's."""
    if not isinstance(exc, Exception) or isinstance(exc, UserError):
        return False
    if type(exc).__module__.startswith(COMPILER_MODULES):
        return True
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    for filename in reversed(frames):  # innermost first
        if any(path in filename for path in _COMPILER_PATHS):
            return True
        if not filename.startswith(_TORCH_DIR):
            return False
    return False


def failure_reason(exc: BaseException, limit: int = 240) -> str:
    """The error's first line (with the next one when the first only introduces it, as in
    "backend='inductor' raised:"), on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _raise_recompile_limits(num_tasks: int) -> None:
    """Multi-task models take the task index as an int: dynamo specialises on it, so a model sees
    one graph per task and mode (train/eval, grad/no-grad, static/dynamic batch). torch's default
    of 8 graphs per function would silently run the rest eager."""
    config = torch._dynamo.config
    wanted = 8 + 4 * max(int(num_tasks), 1)
    config.recompile_limit = max(int(config.recompile_limit), wanted)
    config.accumulated_recompile_limit = max(
        int(config.accumulated_recompile_limit), 4 * config.recompile_limit
    )


def _keep_saved_tensors() -> None:
    """Compiled backwards must leave their saved tensors intact: the task-gradient matrix G and
    the gradient methods backpropagate once per task through the same graph (retain_graph=True).

    By default AOTAutograd lets inductor write a backward's results into its saved activations
    ("donated buffers"), which only one backward may do. `donated_buffer=False` turns that off,
    but with torch 2.13 the on-disk FX graph cache does not key a backward graph on it: a backward
    compiled with donation by any earlier process is served again and silently corrupts the second
    backward's gradients (reproduced: head gradients off by 0.18 on the tiny default run). So
    the on-disk graph cache is off as well (compiled graphs are still reused within the process).
    """
    import torch._functorch.config
    import torch._inductor.config

    torch._functorch.config.donated_buffer = False
    torch._inductor.config.fx_graph_cache = False
    torch._functorch.config.enable_autograd_cache = False


class StepTrial:
    """What a training step changes before its backward ends: the run's generator, torch's RNGs,
    the family's sampler state, the weighting method's state and the model's buffers (BatchNorm
    statistics). `restore` puts them back, so the step can run again as if it never started."""

    def __init__(self, run: Any) -> None:
        self.generator = run.generator.get_state()
        self.torch_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.family = copy.deepcopy(run.family.state_dict())
        self.weighting = copy.deepcopy(run.weighting.state_dict())
        self.buffers = {name: b.detach().clone() for name, b in run.model.named_buffers()}

    def restore(self, run: Any) -> None:
        run.generator.set_state(self.generator)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        run.family.load_state_dict(copy.deepcopy(self.family))
        run.weighting.load_state_dict(copy.deepcopy(self.weighting))
        with torch.no_grad():
            for name, buffer in run.model.named_buffers():
                if name in self.buffers:
                    buffer.copy_(self.buffers[name])


class ModelCompiler:
    """Compiles one run's model in place (`trainer.compile`, `trainer.compile_mode`) and owns the
    fall-back to eager. `compiled` says whether the model runs compiled now."""

    def __init__(
        self, model: nn.Module, setting: Any, mode: str = "default", name: str = ""
    ) -> None:
        self.model = model
        self.setting = compile_setting(setting)
        if mode not in MODES:
            raise UserError(
                f"trainer.compile_mode: invalid value '{mode}'; allowed: {', '.join(MODES)}"
            )
        self.mode = mode
        self.name = name or type(model).__name__
        self.compiled = False
        self._tried = False  # the first compiled training step has been started
        if self.setting != "false":
            try:
                self._compile()
            except Exception as exc:  # e.g. a platform torch.compile does not support
                self.eager()
                self._failed(exc)

    def _compile(self) -> None:
        _raise_recompile_limits(getattr(self.model, "num_tasks", 1))
        _keep_saved_tensors()
        self.model.compile(mode=self.mode)
        for name in METHODS:
            if callable(getattr(type(self.model), name, None)):
                # an instance attribute shadows the class's method; `eager` removes it
                self.model.__dict__[name] = torch.compile(getattr(self.model, name), mode=self.mode)
        self.compiled = True
        log.info(
            "trainer.compile: model '%s' compiled lazily (torch.compile, mode %s)",
            self.name,
            self.mode,
        )

    def eager(self) -> None:
        """Back to the plain module: same object, same parameters, no compiled code."""
        self.model._compiled_call_impl = None  # what nn.Module.compile set
        for name in METHODS:
            self.model.__dict__.pop(name, None)
        self.compiled = False

    def _failed(self, exc: BaseException) -> None:
        reason = failure_reason(exc)
        log.debug("torch.compile failed for model '%s'", self.name, exc_info=exc)
        if self.setting == "true":
            raise UserError(
                f"trainer.compile: model '{self.name}' cannot be compiled ({reason}); "
                "use trainer.compile=auto to fall back to eager"
            ) from exc
        log.warning(
            "trainer.compile=auto: model '%s' cannot be compiled (%s); continuing eager",
            self.name,
            reason,
        )

    def trial(self, run: Any) -> StepTrial | None:
        """Before a training step: the state to restore if it is the first compiled step and the
        compilation fails (None otherwise)."""
        if not self.compiled or self._tried:
            return None
        self._tried = True
        return StepTrial(run)

    def recover(self, exc: BaseException, trial: StepTrial | None = None, run: Any = None) -> bool:
        """After a training step raised `exc`: False when it is not a compilation failure (the
        caller re-raises it). Otherwise restore `trial` (when given), then raise the UserError
        (compile=true) or go eager (auto) and return True: the caller runs the step again."""
        if not self.compiled or not is_compile_error(exc):
            return False
        if trial is not None:
            trial.restore(run)
        self.eager()
        self._failed(exc)
        return True

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` (an evaluation: no state changes), again eager after a compilation failure."""
        try:
            return fn()
        except Exception as exc:
            if not self.recover(exc):
                raise
        return fn()
