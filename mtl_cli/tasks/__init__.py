"""Task builders named by `task._target_`: each turns a dataset into one family's task data.

The layout follows the config group `conf/task/`: the choice `task=<family>/<name>` is built by
`mtl_cli/tasks/<family>/<name>.py`, one builder function per module (e.g. `task=multitask/
multifashion` -> `mtl_cli.tasks.multitask.multifashion.multifashion_tasks`). The meta presets
that share one schema share its module: `meta/hershey_*` -> `meta/hershey.py`, `meta/omniglot_*`
-> `meta/omniglot.py`, `meta/fashion_*` -> `meta/fashion.py`.

Helpers live beside the families: `common.py` (family-independent: class splits, episode
samplers, label options), `hershey_common.py` (Hershey rendering, alphabet names) and
`fashion_common.py` (Fashion-MNIST loading, split pools, construction cache).
"""
