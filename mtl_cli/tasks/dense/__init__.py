"""Dense scene-understanding builders: `task=dense/<name>` is built by `dense/<name>.py`."""
