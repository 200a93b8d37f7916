"""mtl_cli: an experiment runner for multi-task, multi-label and meta-learning research."""

__version__ = "0.1.0"
