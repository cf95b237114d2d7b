"""What the in-process SQL kernels (``featurestore.sql_kernels``) share: DuckDB's scalar semantics
(truncating integer division, half-away-from-zero rounding, NULL-propagating arithmetic) and the
containers of one call's input rows (a table by pid, one user's rows with prefix label aggregates),
and the builder of a group's output table.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import accumulate

import pyarrow as pa

DAY = 86400
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --- DuckDB's scalar semantics ----------------------------------------------------------------

def cdiv(a: int, b: int) -> int:
    """Integer ``a // b`` as DuckDB computes it: truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def cmod(a: int, b: int) -> int:
    """Integer ``a % b`` as DuckDB computes it: the sign of ``a``."""
    return a - b * cdiv(a, b)


def round_away(x: float) -> float:
    """``round(x)``: half away from zero (C's ``round``)."""
    r = math.floor(abs(x))
    r += 1.0 if abs(x) - r >= 0.5 else 0.0
    return math.copysign(r, x)


def round9(x: float | None) -> float | None:
    """``round(x, 9)`` of a DOUBLE: ``round(x * 10^9) / 10^9``, ``x`` itself where that overflows."""
    if x is None or math.isnan(x) or math.isinf(x):
        return x
    r = round_away(x * 1e9) / 1e9
    return x if math.isinf(r) or math.isnan(r) else r


def ln(x: float | None) -> float | None:
    """``ln(x)``: -inf at 0, NaN below."""
    if x is None:
        return None
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def plus1(x: int | None) -> int | None:
    return None if x is None else 1 + x


def double(x) -> float | None:
    """``x::DOUBLE`` (booleans to 1/0, NULL stays NULL)."""
    return None if x is None else float(x)


def timestamp(seconds: int) -> datetime:
    """``make_timestamp(seconds * 1000000)`` (UTC)."""
    return EPOCH + timedelta(seconds=seconds)


def median(values: list[float]) -> float | None:
    """``median(y)`` of DOUBLEs: the middle value, or the two middle ones interpolated."""
    if not values:
        return None
    s = sorted(values)
    n = len(s)
    lo, hi = s[(n - 1) // 2], s[n // 2]
    return lo if n % 2 else lo * 0.5 + hi * 0.5


def div(a, b) -> float | None:
    """``a / b`` with NULL operands or a zero divisor giving NULL."""
    return None if a is None or b is None or b == 0 else a / b


# --- inputs --------------------------------------------------------------------------------------

class Rows:
    """A table's rows by pid (``table`` columns as Python lists)."""

    def __init__(self, table: pa.Table) -> None:
        self.cols = table.to_pydict()
        self.at = {p: i for i, p in enumerate(self.cols["pid"])}

    def get(self, column: str, pid: int):
        return self.cols[column][self.at[pid]]

    def __contains__(self, pid: int) -> bool:
        return pid in self.at


class Inputs:
    """The input tables of one call, each turned into ``Rows`` once for all the groups that read it."""

    def __init__(self, tables: dict[str, pa.Table]) -> None:
        self._tables, self._rows = tables, {}

    def table(self, name: str) -> pa.Table:
        return self._tables[name]

    def rows(self, name: str) -> Rows:
        if name not in self._rows:
            self._rows[name] = Rows(self._tables[name])
        return self._rows[name]


@dataclass
class UserRows:
    """One user's (or user x category's) rows sorted by (postdate, pid), with prefix aggregates
    of the visible labels (``y``: the label where visible, else None)."""

    postdate: list[int]
    y: list[float | None]
    pid: list[int]

    def __post_init__(self) -> None:
        yi = [None if v is None else int(round_away(v * 1000000)) for v in self.y]
        self.n = list(accumulate(0 if v is None else 1 for v in yi))
        self.s = list(accumulate(0 if v is None else v for v in yi))
        self.q = list(accumulate(0 if v is None else v * v for v in yi))

    def before(self, t: int) -> int:
        """How many rows lie strictly before postdate ``t`` (the window is ``[:k]``)."""
        return bisect.bisect_left(self.postdate, t)


def by_key(pids: list[int], keys: list, postdate: list[int], y: list | None = None) -> dict:
    """key -> ``UserRows`` of the rows with that key (``None`` is a key like any other)."""
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    out = {}
    for k, idx in groups.items():
        idx.sort(key=lambda i: (postdate[i], pids[i]))
        out[k] = UserRows([postdate[i] for i in idx], [None if y is None else y[i] for i in idx],
                           [pids[i] for i in idx])
    return out


def targets_of(pids, *tables: Rows) -> list[int]:
    """The pids (in ``pids`` order) with a row in every one of ``tables`` (the SQL's inner joins)."""
    return [p for p in pids if all(p in t for t in tables)]


def arrow_table(columns: dict[str, tuple[list, pa.DataType]]) -> pa.Table:
    return pa.table({name: pa.array(values, type) for name, (values, type) in columns.items()})


def doubles(rows: list[dict], names: list[str]) -> dict[str, tuple[list, pa.DataType]]:
    return {n: ([r[n] for r in rows], pa.float64()) for n in names}


def rows_frame(targets: list[int], postdates: list[int], rows: list[dict], ints: dict[str, pa.DataType] | None = None
           ) -> pa.Table:
    """pid, postdate and the rows' columns (DOUBLE unless ``ints`` types them), sorted by pid."""
    order = sorted(range(len(targets)), key=targets.__getitem__)
    rows = [rows[i] for i in order]
    names = list(rows[0]) if rows else []
    cols = {"pid": ([targets[i] for i in order], pa.int64()), "postdate": ([postdates[i] for i in order], pa.int64())}
    cols |= doubles(rows, [n for n in names if n not in (ints or {})])
    cols |= {n: ([r[n] for r in rows], t) for n, t in (ints or {}).items()}
    return arrow_table({n: cols[n] for n in ("pid", "postdate", *names)})
