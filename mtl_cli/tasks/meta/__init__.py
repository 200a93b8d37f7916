"""Meta-learning builders: `task=meta/<source>_<preset>` is built by `meta/<source>.py`."""
