"""Compare saved and current configs (no torch: the CLI checks a resume before launching)."""


def config_mismatch(saved: dict, current: dict, prefix: str = "") -> str | None:
    """First key where two plain config dicts differ, as 'key: saved vs current' (None if equal)."""
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            found = config_mismatch(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} in the checkpoint vs {b!r} now"
    return None
