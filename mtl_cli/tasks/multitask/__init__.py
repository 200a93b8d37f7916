"""Multi-task builders: `task=multitask/<name>` is built by `multitask/<name>.py`."""
