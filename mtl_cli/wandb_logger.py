"""`logger=wandb`: the run's config as the W&B run config, each evaluation's scalars logged at its
step, the final metrics.json as the run summary.

Weights & Biases (https://docs.wandb.ai/ref/python/sdk/functions/init/): `mode=offline` (default)
writes the run under `<dir>/wandb/offline-run-*` with no network (`wandb sync` uploads it later);
`online` needs an account, `disabled` makes every call a no-op. The W&B run id is kept in
`<run dir>/wandb_run_id`, so that a resumed run continues the same W&B run.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from mtl_cli.loggers import flat_config, scalars

RUN_ID_FILE = "wandb_run_id"


class WandbLogger:
    """The run as a W&B run: config = the resolved config, metrics at each evaluation's step,
    summary = the values of the final metrics.json ("test/accuracy", "num_params", ...)."""

    def __init__(
        self,
        out_dir: str | Path,
        config: dict[str, Any] | None = None,
        mode: str = "offline",
        project: str = "mtl_cli",
        entity: str | None = None,
        dir: str | None = None,
    ) -> None:
        from mtl_cli.launch import require

        wandb = require("wandb", "logger=wandb")
        self.out_dir = Path(out_dir)
        id_file = self.out_dir / RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
        where = Path(dir) if dir else self.out_dir
        where.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(
            silent=True, console="off", disable_git=True, x_disable_stats=True, save_code=False
        )
        self.run = wandb.init(
            mode=mode,
            project=project,
            entity=entity,
            dir=str(where),
            id=run_id,
            name=self.out_dir.name,
            resume="allow",
            config=config or {},
            settings=settings,
            reinit="create_new",
        )
        id_file.write_text(run_id + "\n")

    def log(self, row: dict[str, Any]) -> None:
        """The row's scalars at `row["step"]`."""
        self.run.log(scalars(row), step=int(row["step"]))

    def close(self) -> None:
        """The final metrics.json's numbers as the summary; finish (exit code 1 unless finished)."""
        if self.run is None:
            return
        run, self.run = self.run, None
        summary = self.out_dir / "metrics.json"
        status = None
        if summary.is_file():
            final = json.loads(summary.read_text())
            status = final.get("status")
            numbers = {
                k: v
                for k, v in flat_config(final, sep="/").items()
                if isinstance(v, int | float | str) and not isinstance(v, bool)
            }
            run.summary.update(numbers)
        run.finish(exit_code=0 if status == "finished" else 1)
