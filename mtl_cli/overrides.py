"""Command-line override helpers shared by the CLI and `resume_sweep` (no torch, no Hydra import).

An override is one `key=value` word of the command line, as Hydra parses it (`+key`, `++key` and
`~key` included).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

_BACKSLASHES_BEFORE_QUOTE = re.compile(r"(\\*)'")
_TRAILING_BACKSLASHES = re.compile(r"(\\+)$")


def key(override: str) -> str:
    """The key of an override: `+trainer.steps=5` -> `trainer.steps`, `~seed` -> `seed`."""
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(saved: Sequence[str], new: Sequence[str]) -> list[str]:
    """Saved overrides of a run, with the ones given again on the command line replacing them."""
    keys = {key(o) for o in new}
    return [o for o in saved if key(o) not in keys] + list(new)


def value(override: str) -> str:
    """The value of an override as Hydra reads it (quotes and escapes removed)."""
    raw = override.split("=", 1)[1] if "=" in override else ""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([override])[0].value()
    except Exception:  # not a plain value (a sweep, a function, a parse error): Hydra reports it
        return raw
    return parsed if isinstance(parsed, str) else raw


def run_dir_override(overrides: Sequence[str]) -> Path | None:
    """The dir of `hydra.run.dir=<dir>` on the command line (the last one), else None (also for
    an empty value, which the pre-flight refuses)."""
    found = [o for o in overrides if key(o) == "hydra.run.dir" and "=" in o]
    text = value(found[-1]) if found else ""
    return Path(text) if text.strip() else None


def quote(text: str) -> str:
    """`text` as one quoted override value that Hydra's parser reads back unchanged.

    Hydra (1.1+) keeps backslashes in a quoted value as they are, except a run of backslashes
    right before a quote (the closing one included): there each backslash is written twice and
    the quote itself is escaped.
    """
    body = _BACKSLASHES_BEFORE_QUOTE.sub(lambda m: m.group(1) * 2 + "\\'", text)
    body = _TRAILING_BACKSLASHES.sub(lambda m: m.group(1) * 2, body)
    return f"'{body}'"
