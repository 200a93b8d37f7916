"""Multi-label builders: `task=multilabel/<name>` is built by `multilabel/<name>.py`."""
