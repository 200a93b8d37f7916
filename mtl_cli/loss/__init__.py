"""Task weighting and gradient-combination strategies, one file per method (config group `loss`).

Each method is a `Weighting` (see base.py) built by the trainer with hydra.utils.instantiate from
the `_target_` of its schema in mtl_cli/schemas/loss.py; there is no registry to update here.
"""
