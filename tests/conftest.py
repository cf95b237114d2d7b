import os
import sys
from pathlib import Path

# Tests run two at a time (pytest -n 2) on 2 cores: OpenMP threads that spin while waiting
# (LightGBM, XGBoost) then slow each other down by orders of magnitude. Sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers (smpd_fixture)

from smpd_fixture import write_smpd  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def tiny_smpd(tmp_path):
    """A hand-written 2022+ SMPD directory: 3 train posts, 2 test posts."""
    return write_smpd(tmp_path / "smpd")
