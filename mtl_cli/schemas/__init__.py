"""Typed dataclass schemas for every config group (no torch imports here: `mtl list` stays fast).

Each module defines dataclasses with class variables `group` and `name`; `mtl_cli.config` registers
each one in Hydra's ConfigStore as `schema/<group>/<name>`, and each YAML choice pulls its schema with
`defaults: [/schema/<group>/<name>@_here_, _self_]`. Value ranges live in field metadata
("min", "min_exclusive", "max", "choices") and are checked by `mtl_cli.config.validate`.
"""
