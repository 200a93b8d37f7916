"""`mtl train|eval|report|plot|list`: thin entry points over plain functions (run.py, report.py, plot.py)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mtl_cli.errors import UserError
from mtl_cli.overrides import key as _key
from mtl_cli.overrides import merge_overrides, quote, run_dir_override

COMMANDS = {
    "train": "train a model (Hydra overrides, -m for sweeps)",
    "eval": "re-evaluate a finished run: mtl eval run=<run dir> [split=test checkpoint=best]",
    "report": "one table for runs/sweeps: mtl report <dir>... [metrics=[test/*]]",
    "list": "config groups and their choices: mtl list [group ...] [group=choice]",
    "plot": "PNG learning curves and bars: mtl plot <run or sweep dir> [metric=val/accuracy] [out=<dir>]",
}
USAGE = "usage: mtl {" + ",".join(COMMANDS) + "} [overrides ...] [-m]"
#: Hydra flags that take a value (the next word unless written --flag=value)
HYDRA_FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
                          "--experimental-rerun", "--package", "-p", "--cfg", "-c"}  # fmt: skip
#: Hydra flags whose value is optional: the next word is theirs only if it is one of these (the
#: first is the value of the bare flag)
HYDRA_FLAGS_WITH_OPTIONAL_VALUE = {
    "--info": ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath"),
    "-i": ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath"),
}
#: where `mtl` may write: the run dir of a single run, the sweep dir of -m
DIR_KEYS = {False: "hydra.run.dir", True: "hydra.sweep.dir"}
#: the sections of metrics.json that hold metrics (optimized_metric=<section>/<metric>)
METRIC_SECTIONS = ("best_val", "best_test", "val", "test")

log = logging.getLogger("mtl_cli")


def fail(message: str, code: int = 2) -> None:
    """One-line error on stderr, non-zero exit."""
    print(f"mtl: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate Hydra's own flags (each with its value) from key=value overrides.

    Hydra apps take flags and overrides in any order; Hydra's parser gets the flags first, so a
    flag's value is the word after it on the command line, never an override (a bare `--info`
    becomes `--info=all`).
    """
    flags, overrides = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in HYDRA_FLAGS_WITH_VALUE:
            flags += args[i : i + 2]
            i += 2
            continue
        if arg in HYDRA_FLAGS_WITH_OPTIONAL_VALUE:
            following = args[i + 1] if i + 1 < len(args) else None
            if following in HYDRA_FLAGS_WITH_OPTIONAL_VALUE[arg]:
                flags += [arg, following]
                i += 2
            else:  # bare: its default, written so that argparse cannot take an override for it
                flags.append(f"{arg}={HYDRA_FLAGS_WITH_OPTIONAL_VALUE[arg][0]}")
                i += 1
            continue
        (flags if arg.startswith("-") else overrides).append(arg)
        i += 1
    return flags, overrides


def expand_sweep(overrides: Sequence[str], limit: int = 64) -> list[list[str]]:
    """The override lists of a -m sweep (simple choice/range sweeps; others are left to Hydra)."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob

    from mtl_cli.registry import config_groups, group_choices

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    axes = []
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            try:
                values = list(o.sweep_string_iterator())
            except Exception:  # glob() over a group: its registry choices; interval(): Hydra's
                if not (isinstance(o.value(), Glob) and key in config_groups()):
                    continue
                values = o.value().filter(group_choices(key))
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
    """Refuse a run/sweep dir that is empty or cannot be made: create what is missing of it (up
    to its first interpolation), write a file there, and remove all of that again."""
    import tempfile

    if not path_template.strip():
        fail(f"{key}: empty value ''; allowed: a directory, e.g. {key}=outputs/my_run")
    fixed = path_template
    if "${" in fixed:  # the dir above the first interpolated name ("" = the current dir)
        head, sep, _ = fixed.split("${", 1)[0].rpartition("/")
        fixed = head + sep
    target = Path(fixed or ".").absolute()
    missing = []
    path = target
    while not path.exists() and not path.is_symlink():
        missing.append(path)
        path = path.parent
    if not path.is_dir():
        fail(f"{key}: cannot create a run dir under {path} (not a directory)")
    created: list[Path] = []
    problem = None
    try:
        for directory in reversed(missing):
            directory.mkdir()
            created.append(directory)
        handle, probe = tempfile.mkstemp(prefix=".mtl-write-test-", dir=target)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        problem = f"{key}: cannot create {target} ({exc.strerror or exc}); allowed: a writable dir"
    finally:
        for directory in reversed(created):
            try:
                directory.rmdir()
            except OSError:
                pass
    if problem:
        fail(problem)


def _is_hydra_key(override: str) -> bool:
    k = _key(override)
    return k == "hydra" or k.startswith("hydra.")


def config_dirs_of(flags: Sequence[str]) -> list[str]:
    """The dirs of `--config-dir`/`-cd` flags (the user's own config groups and choices)."""
    dirs = []
    for i, flag in enumerate(flags):
        name, eq, value = flag.partition("=")
        if name in ("--config-dir", "-cd"):
            dirs.append(value if eq else flags[i + 1] if i + 1 < len(flags) else "")
    return [d for d in dirs if d]


def preflight_train(
    overrides: list[str], multirun: bool, config_dirs: Sequence[str] = ()
) -> list[str]:
    """Validate every job's config before Hydra creates any dir; returns the overrides to run.
    `config_dirs` (`--config-dir`) and `hydra.searchpath` hold the user's own choices.

    `hydra.run.dir=<existing run>` resumes it: its saved overrides are applied first, and a config
    that differs from the run's saved one is refused before anything in the run dir is touched.
    """
    from omegaconf import OmegaConf

    from mtl_cli.config import compose, validate

    run_dir = None if multirun else run_dir_override(overrides)
    if run_dir is not None and (run_dir / ".hydra" / "overrides.yaml").is_file():
        saved_path = run_dir / ".hydra" / "overrides.yaml"
        try:
            saved = [str(o) for o in OmegaConf.load(saved_path)]
        except Exception as exc:
            fail(f"{saved_path}: unreadable ({str(exc).splitlines()[0] if str(exc) else exc})")
        overrides = merge_overrides(saved, overrides)
    jobs = expand_sweep(overrides) if multirun else [overrides]
    try:
        for job in jobs:
            job = [o for o in job if not _is_hydra_key(o) or _key(o) == "hydra.searchpath"]
            cfg = compose(job + ["paths.output_dir=."], config_dirs=config_dirs)
            validate(cfg)
            check_known_keys(cfg)
            check_optimized_metric(cfg)
        hydra_cfg = compose(
            [o for o in overrides if "," not in o or not multirun] + ["paths.output_dir=."],
            return_hydra_config=True,
            config_dirs=config_dirs,
        ).hydra
    except UserError as exc:
        fail(str(exc))
    where = "sweep" if multirun else "run"
    _check_writable(str(OmegaConf.to_container(hydra_cfg[where])["dir"]), DIR_KEYS[multirun])
    if run_dir is not None and (run_dir / "checkpoints" / "last.pt").is_file():
        _check_resumable(run_dir, cfg)
    return overrides + _optuna_direction(hydra_cfg, cfg, overrides)


def check_known_keys(cfg, prefix: str = "") -> None:
    """Refuse keys that a schema dataclass does not have (`+trainer.stepz=5` appends past the
    schema); nodes typed as free dicts (e.g. `loss.weights`) take any key."""
    import dataclasses

    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, ListConfig):
        for i in range(len(cfg)):
            item = cfg._get_node(i)
            if isinstance(item, DictConfig | ListConfig):
                check_known_keys(item, f"{prefix}{i}.")
        return
    if not isinstance(cfg, DictConfig) or cfg._is_none() or cfg._is_missing():
        return
    try:
        schema = OmegaConf.get_type(cfg)
    except Exception:
        schema = None
    if schema is not None and dataclasses.is_dataclass(schema):
        fields = [f.name for f in dataclasses.fields(schema)]
        for k in cfg.keys():
            if k not in fields and not (prefix == "" and k == "hydra"):
                raise UserError(f"{prefix}{k}: no such key; allowed: {', '.join(fields)}")
    for k in cfg.keys():
        if prefix == "" and k == "hydra":
            continue
        child = cfg._get_node(k)
        if isinstance(child, DictConfig | ListConfig):
            check_known_keys(child, f"{prefix}{k}.")


def check_optimized_metric(cfg) -> None:
    """`optimized_metric` must name a metric this run writes to metrics.json: auto, delta_m (with
    baseline_run), <section>/<metric> of the task's family or <section>/<task>/<metric>."""
    from mtl_cli.launch import family_metrics
    from mtl_cli.metrics import higher_is_better

    name = str(cfg.get("optimized_metric", "auto"))
    if name == "auto":
        return
    if name == "delta_m":
        if not cfg.get("baseline_run"):
            raise UserError(
                "optimized_metric: 'delta_m' is only written with baseline_run=<finished "
                "model=independent run>; pass baseline_run or pick another metric"
            )
        return
    metrics, per_task = family_metrics(cfg)
    section, _, rest = name.partition("/")
    metric = rest.rpartition("/")[2]
    if section in METRIC_SECTIONS and rest and not rest.startswith("/"):
        if "/" not in rest and metric in metrics:
            return
        if "/" in rest and metric and (metric in metrics or metric in per_task):
            return
        if "/" in rest and metric:
            try:
                higher_is_better(metric)
                return
            except ValueError:
                pass
    first = ", ".join(f"{METRIC_SECTIONS[0]}/{m}" for m in metrics)
    others = ", ".join(f"{s}/" for s in METRIC_SECTIONS[1:])
    raise UserError(
        f"optimized_metric: '{name}' is not a metric of this run; allowed: auto, delta_m, {first} "
        f"(or {others} instead of {METRIC_SECTIONS[0]}/), <section>/<task>/<metric>"
    )


def _optuna_direction(hydra_cfg, cfg, overrides: Sequence[str]) -> list[str]:
    """`hydra.sweeper.direction=<maximize|minimize>` from the optimized metric, for the optuna
    sweeper; a direction given on the command line must agree with it."""
    from omegaconf import ListConfig, OmegaConf

    from mtl_cli.launch import default_metric, direction, objective_name

    target = str(OmegaConf.select(hydra_cfg, "sweeper._target_", default=""))
    if "OptunaSweeper" not in target:
        return []
    select = str(cfg.trainer.select_metric)
    name = objective_name(cfg.optimized_metric, default_metric(cfg) if select == "auto" else select)
    try:
        wanted = direction(name)
    except UserError as exc:
        fail(str(exc))
    if not any(_key(o) == "hydra.sweeper.direction" for o in overrides):
        return [f"hydra.sweeper.direction={wanted}"]
    given = OmegaConf.select(hydra_cfg, "sweeper.direction", default=None)
    if isinstance(given, ListConfig):
        fail(
            f"hydra.sweeper.direction: {list(given)} (several objectives) but a run returns one, "
            f"'{name}'; allowed: {wanted}"
        )
    given = str(getattr(given, "name", given))
    if given.rsplit(".", 1)[-1].lower() != wanted:
        fail(
            f"hydra.sweeper.direction: '{given}' but '{name}' should be {wanted}d; "
            f"allowed: {wanted} (pass hydra.sweeper.direction={wanted} or leave it out)"
        )
    return []


def _check_resumable(run_dir: Path, cfg) -> None:
    """Refuse to continue the run in `run_dir` under another run identity (or with resume=false)."""
    from omegaconf import OmegaConf

    from mtl_cli.checkpoint_compare import config_mismatch, refuse_existing_run, run_identity

    try:
        refuse_existing_run(run_dir, bool(cfg.trainer.resume))
    except UserError as exc:
        fail(str(exc))
    saved_path = run_dir / ".hydra" / "config.yaml"
    if saved_path.is_file():
        try:
            saved = run_identity(OmegaConf.load(saved_path))
        except Exception as exc:
            fail(f"{saved_path}: unreadable ({str(exc).splitlines()[0] if str(exc) else exc})")
        mismatch = config_mismatch(saved, run_identity(cfg))
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
        return summary.get("optimized_value")
    except Interrupted as exc:
        log.warning("%s", exc)
        if exc.chained is not None:  # e.g. submitit on SIGUSR2: requeue this job (it resumes)
            exc.chained(exc.signum, None)
        raise SystemExit(128 + exc.signum) from None
    except UserError as exc:
        if not multirun:
            discard_unstarted_run(Path(cfg.paths.output_dir))
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


#: what Hydra and the run write before the first step: a run dir holding only these has no result
UNSTARTED_RUN_ENTRIES = frozenset({".hydra", "train.log", "checkpoints", ".write-test"})


def discard_unstarted_run(out: Path) -> None:
    """Remove the run dir of a run refused before its first step (bad data, bad options): it holds
    only Hydra's config copy, an empty checkpoints folder and the log. Empty parents go too, up to
    the working directory. A dir with anything else in it (a checkpoint, metrics) is kept."""
    out = out.resolve()
    if not out.is_dir() or {p.name for p in out.iterdir()} - UNSTARTED_RUN_ENTRIES:
        return
    if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
        return
    for handler in logging.getLogger().handlers:  # the log file is ours: close it first
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == out:
            handler.close()
    shutil.rmtree(out, ignore_errors=True)
    cwd, parent = Path.cwd().resolve(), out.parent
    while parent != cwd and cwd in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _traceback_to_log_file() -> None:
    """The traceback of the exception being handled goes to train.log only; the console gets one line."""
    record = log.makeRecord(
        log.name, logging.ERROR, __file__, 0, "job failed", None, sys.exc_info()
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def eval_task(cfg) -> None:
    from mtl_cli.eval_settings import given
    from mtl_cli.run import evaluate

    try:
        result = evaluate(
            cfg.run, split=cfg.split, checkpoint=cfg.checkpoint, device=cfg.device,
            overrides=given(cfg),
        )  # fmt: skip
    except UserError as exc:
        fail(str(exc))
    metrics = result["metrics"]
    width = max(len(k) for k in metrics)
    extra = "".join(f", {k}={v}" for k, v in result.get("overrides", {}).items())
    print(
        f"{cfg.run} ({result['checkpoint']}.pt, step {result['step']}, {result['split']}{extra}):"
    )
    for k, v in metrics.items():
        print(f"  {k:<{width}}  {v:.4f}")


def report_task(cfg) -> None:
    from mtl_cli.report import find_runs, format_table, summarize, write_summary

    try:
        runs = find_runs(list(cfg.dirs))
        summary = summarize(
            runs,
            metrics=list(cfg.metrics) if cfg.metrics else None,
            delta_m_over=str(cfg.get("delta_m", "metrics")),
        )
        out = Path(cfg.out) if cfg.out else Path(cfg.dirs[0])
        paths = write_summary(summary, out)
    except (UserError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    print(format_table(summary))
    print(f"\nwritten: {', '.join(str(p) for p in paths)}")


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
    if not informational & {f.split("=", 1)[0] for f in flags}:
        overrides = preflight_train(overrides, multirun, config_dirs_of(flags))
    from mtl_cli import callbacks

    callbacks.SWEEP_FAILURES.clear()
    _run("config", train_task, flags + overrides)
    if multirun and callbacks.SWEEP_FAILURES:
        fail(f"{callbacks.SWEEP_FAILURES[-1]}", code=1)


def cmd_eval(args: list[str]) -> None:
    flags, overrides = split_args(args)
    positional = [a for a in overrides if "=" not in a]
    overrides = [a for a in overrides if "=" in a] + [f"run={quote(p)}" for p in positional[:1]]
    if not any(o.startswith("run=") for o in overrides) and "--help" not in flags:
        fail("run: missing; usage: mtl eval run=<run dir> [split=test] [checkpoint=best]")
    from mtl_cli.eval_settings import check_override_keys

    try:
        check_override_keys(overrides)
    except UserError as exc:
        fail(str(exc))
    _run("eval", eval_task, flags + overrides)


def cmd_report(args: list[str]) -> None:
    flags, overrides = split_args(args)
    dirs = [a for a in overrides if "=" not in a]
    overrides = [a for a in overrides if "=" in a]
    if dirs:
        overrides.append("dirs=[" + ",".join(quote(d) for d in dirs) + "]")
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
