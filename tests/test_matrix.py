"""The model matrix builders: joined frames (training) and aligned tables (a served request) agree."""

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from models.matrix import aligned_matrix, join_features, to_matrix


def _tables():
    a = pa.table({"pid": [3, 1, 2], "postdate": [30, 10, 20], "x": [1.5, None, 2.5], "code": pa.array([4, None, 0], pa.int32())})
    b = pa.table({"pid": [3, 1, 2], "y": [True, False, None], "z": pa.array([7, 8, 9], pa.int64())})
    return [a, b]


def test_aligned_matrix_equals_join_then_to_matrix():
    tables = _tables()
    frames = [pl.from_arrow(t) for t in tables]
    frame, names = join_features(frames, frames[0].select("pid"))
    want = to_matrix(frame, names)
    got = aligned_matrix(tables, names)
    assert names == ["x", "code", "y", "z"] and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[1, 0]) and np.isnan(got[1, 1]) and np.isnan(got[2, 2])  # nulls -> NaN


def test_aligned_matrix_refuses_what_the_join_refuses():
    a, b = _tables()
    with pytest.raises(ValueError, match="different posts or another order"):
        aligned_matrix([a, b.take([1, 0, 2])], ["x", "code", "y", "z"])
    with pytest.raises(ValueError, match="appear in two feature groups"):
        aligned_matrix([a, b.append_column("x", pa.array([0.0, 0.0, 0.0]))], ["x", "code", "y", "z", "x"])
    with pytest.raises(ValueError, match="missing \\['w'\\]"):
        aligned_matrix([a, b], ["x", "code", "y", "z", "w"])
    with pytest.raises(ValueError, match="another order"):
        aligned_matrix([a, b], ["code", "x", "y", "z"])
