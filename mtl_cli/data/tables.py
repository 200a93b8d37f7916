"""Read a table (CSV with the stdlib `csv` module, or Parquet through pyarrow) as string columns."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

PARQUET_HINT = "pip install 'mtl_cli[parquet]'"
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class Table:
    """Column name -> one string per row ("" = missing), in file order.

    `lines`: the line of each row in a CSV (messages say `line N`); None for Parquet, whose
    messages say `row N` (1 = the first row).
    """

    path: Path
    columns: dict[str, list[str]]
    lines: list[int] | None = None

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def where(self, index: int) -> str:
        """Where row `index` (0-based) is, in the user's terms: `file: line N` or `file: row N`."""
        if self.lines is not None:
            return f"{self.path}: line {self.lines[index]}"
        return f"{self.path}: row {index + 1}"

    def column(self, name: str, key: str) -> list[str]:
        """The values of column `name`; ValueError naming the file, `key` and the columns if absent."""
        if name not in self.columns:
            raise ValueError(
                f"{self.path}: {key}: no column '{name}'; columns: {', '.join(self.columns)}"
            )
        return self.columns[name]


def read_table(path: str | Path) -> Table:
    """A CSV (`,`-separated, header row, UTF-8) or a Parquet file (by suffix) as a `Table`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table file not found")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path)
    return _read_csv(path)


def _read_csv(path: Path) -> Table:
    columns: dict[str, list[str]] = {}
    lines: list[int] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank lines carry no row
            if not columns:
                header = [name.strip() for name in row]
                _check_header(header, path)
                columns = {name: [] for name in header}
                continue
            if len(row) != len(columns):
                raise ValueError(
                    f"{path}: line {reader.line_num}: {len(row)} fields; the header has "
                    f"{len(columns)}"
                )
            for values, cell in zip(columns.values(), row, strict=True):
                values.append(cell.strip())
            lines.append(reader.line_num)
    if not columns:
        raise ValueError(f"{path}: empty CSV; expected a header row of column names")
    if not lines:
        raise ValueError(f"{path}: no data rows under the header")
    return Table(path, columns, lines)


def _read_parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"{path}: reading Parquet needs pyarrow: {PARQUET_HINT}") from None
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for bad files
        raise ValueError(f"{path}: not a readable Parquet file ({err})") from None
    header = [str(name) for name in table.column_names]
    _check_header(header, path)
    columns = {name: [_text(v) for v in table.column(name).to_pylist()] for name in header}
    if table.num_rows == 0:
        raise ValueError(f"{path}: no data rows")
    return Table(path, columns)


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _check_header(header: list[str], path: Path) -> None:
    seen: set[str] = set()
    for name in header:
        if not name:
            raise ValueError(f"{path}: header has an empty column name")
        if name in seen:
            raise ValueError(f"{path}: column '{name}' appears twice in the header")
        seen.add(name)
