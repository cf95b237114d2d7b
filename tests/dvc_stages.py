"""Every DVC stage of the repository: the root dvc.yaml and the optional stages' file."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OPTIONAL_FILE = REPO / "pipelines" / "optional" / "dvc.yaml"


def root_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def optional_stages() -> dict:
    """The optional stages; their paths are relative to the repository root (``wdir: ../..``)."""
    stages = yaml.safe_load(OPTIONAL_FILE.read_text())["stages"]
    assert all(st.get("wdir") == "../.." for st in stages.values())
    return stages


def all_stages() -> dict:
    root, optional = root_stages(), optional_stages()
    assert not set(root) & set(optional)
    return root | optional
