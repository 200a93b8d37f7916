"""`mtl train|eval|report|plot|list`: thin entry points over plain functions (run.py, report.py, plot.py)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mtl_cli.errors import UserError

COMMANDS = {
    "train": "train a model (Hydra overrides, -m for sweeps)",
    "eval": "re-evaluate a finished run: mtl eval run=<run dir> [split=test checkpoint=best]",
    "report": "one table for runs/sweeps: mtl report <dir>... [metrics=[test/*]]",
    "list": "config groups and their choices: mtl list [group ...] [group=choice]",
    "plot": "PNG learning curves and bars: mtl plot <run or sweep dir> [metric=val/accuracy] [out=<dir>]",
}
USAGE = "usage: mtl {" + ",".join(COMMANDS) + "} [overrides ...] [-m]"
HYDRA_FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
                          "--experimental-rerun", "--info", "-i", "--package", "-p"}  # fmt: skip
HYDRA_FLAGS = {"-m", "--multirun", "--cfg", "-c", "--resolve", "--help", "-h", "--hydra-help",
               "--version", "--shell-completion", "-sc", "--run", "-r"}  # fmt: skip

log = logging.getLogger("mtl_cli")


def fail(message: str, code: int = 2) -> None:
    """One-line error on stderr, non-zero exit."""
    print(f"mtl: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate Hydra's own flags from key=value overrides."""
    flags, overrides = [], []
    it = iter(args)
    for arg in it:
        if arg in HYDRA_FLAGS_WITH_VALUE:
            flags += [arg, next(it, "")]
        elif arg.startswith("-"):
            flags.append(arg)
        else:
            overrides.append(arg)
    return flags, overrides


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(saved: Sequence[str], new: Sequence[str]) -> list[str]:
    """Saved overrides of a run, with the ones given again on the command line replacing them."""
    keys = {_key(o) for o in new}
    return [o for o in saved if _key(o) not in keys] + list(new)


def run_dir_override(overrides: Sequence[str]) -> Path | None:
    for o in overrides:
        if o.startswith("hydra.run.dir="):
            return Path(o.split("=", 1)[1])
    return None


def expand_sweep(overrides: Sequence[str], limit: int = 64) -> list[list[str]]:
    """The override lists of a -m sweep (simple choice/range sweeps; others are left to Hydra)."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    axes = []
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            try:
                values = list(o.sweep_string_iterator())
            except Exception:  # glob() and interval() need Hydra's own sweeper
                continue
            axes.append([f"{key}={v}" for v in values])
        else:
            axes.append([o.input_line])
    total = 1
    for axis in axes:
        total *= len(axis)
    if total <= limit:
        return [list(c) for c in itertools.product(*axes)]
    first = [axis[0] for axis in axes]  # too many: vary one key at a time
    return [first[:i] + [v] + first[i + 1 :] for i, axis in enumerate(axes) for v in axis]


def _check_writable(path_template: str, key: str) -> None:
    fixed = path_template.split("${", 1)[0]
    path = Path(fixed or ".").absolute()
    while not path.exists():
        path = path.parent
    if not path.is_dir():
        fail(f"{key}: cannot create a run dir under {path} (not a directory)")
    if not os.access(path, os.W_OK):
        fail(f"{key}: cannot write under {path} (permission denied)")


def preflight_train(overrides: list[str], multirun: bool) -> list[str]:
    """Validate every job's config before Hydra creates any dir; returns the overrides to run.

    `hydra.run.dir=<existing run>` resumes it: its saved overrides are applied first, and a config
    that differs from the run's saved one is refused before anything in the run dir is touched.
    """
    from omegaconf import OmegaConf

    from mtl_cli.config import compose, validate

    run_dir = None if multirun else run_dir_override(overrides)
    if run_dir is not None and (run_dir / ".hydra" / "overrides.yaml").is_file():
        saved = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]
        overrides = merge_overrides(saved, overrides)
    jobs = expand_sweep(overrides) if multirun else [overrides]
    try:
        for job in jobs:
            job = [o for o in job if not o.startswith("hydra.")]  # hydra keys need a live Hydra
            cfg = compose(job + ["paths.output_dir=."])
            validate(cfg)
        hydra_cfg = compose(
            [o for o in overrides if "," not in o or not multirun] + ["paths.output_dir=."],
            return_hydra_config=True,
        ).hydra
    except UserError as exc:
        fail(str(exc))
    if multirun:
        _check_writable(str(OmegaConf.to_container(hydra_cfg.sweep)["dir"]), "hydra.sweep.dir")
    else:
        _check_writable(str(OmegaConf.to_container(hydra_cfg.run)["dir"]), "hydra.run.dir")
    if run_dir is not None and (run_dir / "checkpoints" / "last.pt").is_file():
        _check_resumable(run_dir, cfg)
    return overrides + _optuna_direction(hydra_cfg, cfg, overrides)


def _optuna_direction(hydra_cfg, cfg, overrides: Sequence[str]) -> list[str]:
    """`hydra.sweeper.direction=<maximize|minimize>` from the optimized metric, for the optuna sweeper."""
    from omegaconf import OmegaConf

    from mtl_cli.launch import default_metric, direction, objective_name

    target = str(OmegaConf.select(hydra_cfg, "sweeper._target_", default=""))
    if "OptunaSweeper" not in target:
        return []
    if any(_key(o) == "hydra.sweeper.direction" for o in overrides):
        return []
    select = str(cfg.trainer.select_metric)
    name = objective_name(cfg.optimized_metric, default_metric(cfg) if select == "auto" else select)
    try:
        return [f"hydra.sweeper.direction={direction(name)}"]
    except UserError as exc:
        fail(str(exc))
    return []


def _check_resumable(run_dir: Path, cfg) -> None:
    from omegaconf import OmegaConf

    from mtl_cli.checkpoint_compare import config_mismatch
    from mtl_cli.config import RUN_IDENTITY_KEYS

    if not cfg.trainer.resume:
        fail(
            f"trainer.resume=false but {run_dir} already holds a run (checkpoints/last.pt); "
            "pick another run dir or pass trainer.resume=true"
        )
    saved_path = run_dir / ".hydra" / "config.yaml"
    if saved_path.is_file():
        saved = OmegaConf.to_container(OmegaConf.load(saved_path))
        now = OmegaConf.to_container(cfg)
        mismatch = config_mismatch(
            {k: saved.get(k) for k in RUN_IDENTITY_KEYS}, {k: now.get(k) for k in RUN_IDENTITY_KEYS}
        )
        if mismatch:
            fail(f"{run_dir}: cannot resume with a different config ({mismatch})")


# ---------------------------------------------------------------------- Hydra entry points


def hydra_entry(config_name: str, task: Callable) -> Callable[[], None]:
    """Wrap `task(cfg)` in @hydra.main with the package's conf/ (the wheel ships it)."""
    import hydra

    from mtl_cli.config import register_schemas

    register_schemas()
    return hydra.main(config_path="conf", config_name=config_name, version_base="1.3")(task)


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


def train_task(cfg) -> float | None:
    """One job of `mtl train`, returning its optimized metric (what a sweeper such as optuna reads).

    Errors end a single run; in a sweep they are recorded in the job's metrics.json and the sweep
    goes on. In a sweep, a job whose run dir already holds this finished run is skipped.
    """
    from mtl_cli.run import Interrupted, train
    from mtl_cli.sweep_resume import finished_summary, record_failure

    multirun = _multirun()
    try:
        summary = finished_summary(cfg) if multirun else None
        if summary is not None:
            log.info("already finished, skipped: %s", cfg.paths.output_dir)
        else:
            summary = train(cfg)
        _check_sweeper_direction(summary)
        return summary.get("optimized_value")
    except Interrupted as exc:
        log.warning("%s", exc)
        if exc.chained is not None:  # e.g. submitit on SIGUSR2: requeue this job (it resumes)
            exc.chained(exc.signum, None)
        raise SystemExit(128 + exc.signum) from None
    except UserError as exc:
        if not multirun:
            fail(str(exc))
        log.error("job failed: %s", exc)
        record_failure(cfg.paths.output_dir, str(exc))
    except Exception as exc:
        _traceback_to_log_file()
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if not multirun:
            fail(message, code=1)
        record_failure(cfg.paths.output_dir, message)
    return None


def _traceback_to_log_file() -> None:
    """The traceback of the exception being handled goes to train.log only; the console gets one line."""
    record = log.makeRecord(
        log.name, logging.ERROR, __file__, 0, "job failed", None, sys.exc_info()
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _check_sweeper_direction(summary: dict) -> None:
    """Refuse an optuna direction that contradicts the optimized metric (e.g. maximising a loss)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from mtl_cli.launch import direction

    try:
        sweeper = HydraConfig.get().sweeper
    except ValueError:  # not launched by Hydra
        return
    given = OmegaConf.select(sweeper, "direction", default=None)
    if "OptunaSweeper" not in str(sweeper.get("_target_", "")) or not isinstance(given, str):
        return
    wanted = direction(str(summary.get("optimized_metric")))
    if given.rsplit(".", 1)[-1] != wanted:
        raise UserError(
            f"hydra.sweeper.direction: '{given}' but '{summary.get('optimized_metric')}' should be "
            f"{wanted}d; pass hydra.sweeper.direction={wanted}"
        )


def eval_task(cfg) -> None:
    from mtl_cli.run import evaluate

    try:
        result = evaluate(cfg.run, split=cfg.split, checkpoint=cfg.checkpoint, device=cfg.device)
    except UserError as exc:
        fail(str(exc))
    metrics = result["metrics"]
    width = max(len(k) for k in metrics)
    print(f"{cfg.run} ({result['checkpoint']}.pt, step {result['step']}, {result['split']}):")
    for k, v in metrics.items():
        print(f"  {k:<{width}}  {v:.4f}")


def report_task(cfg) -> None:
    from mtl_cli.report import find_runs, format_table, summarize, write_summary

    try:
        runs = find_runs(list(cfg.dirs))
        summary = summarize(runs, metrics=list(cfg.metrics) if cfg.metrics else None)
        out = Path(cfg.out) if cfg.out else Path(cfg.dirs[0])
        paths = write_summary(summary, out)
    except (UserError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    print(format_table(summary))
    print(f"\nwritten: {', '.join(str(p) for p in paths)}")


def _quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run(config_name: str, task: Callable, argv: list[str]) -> None:
    sys.argv = [f"mtl {config_name}", *argv]
    hydra_entry(config_name, task)()


def cmd_train(args: list[str]) -> None:
    from mtl_cli.launch import check_plugins
    from mtl_cli.sweep_resume import pop_resume_sweep, resume_overrides

    flags, overrides = split_args(args)
    multirun = "-m" in flags or "--multirun" in flags
    try:
        resume_dir, overrides = pop_resume_sweep(overrides)
        if resume_dir is not None:
            if not multirun:
                fail(
                    "resume_sweep: needs -m (it re-runs a sweep); use hydra.run.dir=<run> for one run"
                )
            overrides = resume_overrides(resume_dir, overrides)
    except UserError as exc:
        fail(str(exc))
    informational = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--version"}
    try:
        check_plugins(overrides)
    except UserError as exc:
        fail(str(exc))
    if not informational & set(flags):
        overrides = preflight_train(overrides, multirun)
    from mtl_cli import callbacks

    callbacks.SWEEP_FAILURES.clear()
    _run("config", train_task, flags + overrides)
    if multirun and callbacks.SWEEP_FAILURES:
        fail(f"{callbacks.SWEEP_FAILURES[-1]}", code=1)


def cmd_eval(args: list[str]) -> None:
    flags, overrides = split_args(args)
    positional = [a for a in overrides if "=" not in a]
    overrides = [a for a in overrides if "=" in a] + [f"run={_quote(p)}" for p in positional[:1]]
    if not any(o.startswith("run=") for o in overrides) and "--help" not in flags:
        fail("run: missing; usage: mtl eval run=<run dir> [split=test] [checkpoint=best]")
    _run("eval", eval_task, flags + overrides)


def cmd_report(args: list[str]) -> None:
    flags, overrides = split_args(args)
    dirs = [a for a in overrides if "=" not in a]
    overrides = [a for a in overrides if "=" in a]
    if dirs:
        overrides.append("dirs=[" + ",".join(_quote(d) for d in dirs) + "]")
    if not any(o.startswith("dirs=") for o in overrides) and "--help" not in flags:
        fail("dirs: missing; usage: mtl report <run or sweep dir>... [metrics=[test/*]]")
    _run("report", report_task, flags + overrides)


def cmd_plot(args: list[str]) -> None:
    """`mtl plot <run or sweep dir> [metric=<val/...>] [out=<dir>]`: write PNGs, print their paths."""
    from mtl_cli.launch import require

    dirs = [a for a in args if "=" not in a and not a.startswith("-")]
    options = dict(a.split("=", 1) for a in args if "=" in a)
    unknown = sorted(set(options) - {"metric", "out"})
    if unknown or len(dirs) != 1:
        what = f"unknown option '{unknown[0]}'" if unknown else "give exactly one dir"
        fail(f"plot: {what}; usage: mtl plot <run or sweep dir> [metric=val/accuracy] [out=<dir>]")
    try:
        require("matplotlib", "mtl plot")
        from mtl_cli.plot import plot_dir

        paths = plot_dir(dirs[0], metric=options.get("metric"), out=options.get("out"))
    except (UserError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    print("\n".join(str(p) for p in paths))


def cmd_list(args: list[str]) -> None:
    from mtl_cli.listing import list_choices

    try:
        print(list_choices([a for a in args if not a.startswith("-")]))
    except UserError as exc:
        fail(str(exc))


def main(argv: Sequence[str] | None = None) -> None:
    """Console script `mtl` and `python -m mtl_cli`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE + "\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:<8} {text}")
        print("\n`mtl <command> --help` shows a command's options; `mtl list` shows every choice.")
        return
    command, rest = args[0], args[1:]
    handlers = {
        "train": cmd_train,
        "eval": cmd_eval,
        "report": cmd_report,
        "plot": cmd_plot,
        "list": cmd_list,
    }
    if command not in handlers:
        fail(f"unknown command '{command}'; commands: {', '.join(COMMANDS)}")
    try:
        handlers[command](rest)
    except BrokenPipeError:  # e.g. `mtl list | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
