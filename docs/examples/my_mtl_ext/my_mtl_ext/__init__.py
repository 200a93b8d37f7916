"""An mtl_cli extension that lives in its own package: a model and a weighting method."""
