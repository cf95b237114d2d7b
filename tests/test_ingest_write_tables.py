"""write_tables: Parquet round trip and byte-identical output for identical input."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from featurestore.ingest import OUTPUT_TABLES, write_tables
from ingest_helpers import ingest, make


@pytest.mark.parametrize("release, user_form", [("2022", "columns"), ("2019", "records")])
def test_write_tables_round_trip_and_determinism(tmp_path, release, user_form):
    tables, _ = ingest(make(tmp_path, release, user_form))
    a = write_tables(tables, tmp_path / "out_a")
    b = write_tables(tables, tmp_path / "out_b")
    again, _ = ingest(make(tmp_path / "again", release, user_form))
    c = write_tables(again, tmp_path / "out_c")
    assert set(a) == set(OUTPUT_TABLES)
    for name, path in a.items():
        assert path == tmp_path / "out_a" / f"{name}.parquet"
        back = pq.read_table(path)
        assert back.equals(tables[name]), name
        assert back.schema == tables[name].schema, name
        assert path.read_bytes() == b[name].read_bytes() == c[name].read_bytes(), name
    users = pq.read_table(a["users"])
    if user_form == "records":
        assert users["user_description_vec"].to_pylist()[0] == [0.5] * 399
    assert pq.read_table(a["categories"])["subcategory"].to_pylist()[1] == "Health,Fitness"
