"""Printing and writing query results for ``smpp sql``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table


def print_table(table: pa.Table, max_rows: int = 40) -> None:
    """A rich table of the first ``max_rows`` rows, then the total row count."""
    out = Table(show_header=True, header_style="bold")
    for name in table.column_names:
        out.add_column(name)
    for row in table.slice(0, max_rows).to_pylist():
        out.add_row(*(_fmt(v) for v in row.values()))
    console = Console(width=max(120, Console().width))
    console.print(out)
    console.print(f"{table.num_rows} row(s)")


def _fmt(v: object) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list) and len(v) > 6:
        return "[" + ", ".join(map(str, v[:6])) + f", ... ({len(v)})]"
    return str(v)


def write_result(table: pa.Table, path: Path) -> None:
    """Write to CSV or Parquet by the file suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        raise SystemExit(f"--out must end in .csv or .parquet, got {path}")
