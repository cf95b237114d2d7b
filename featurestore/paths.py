"""Where every artefact of a run lives, relative to a work root (the repo for DVC, --workdir for smpp run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featurestore.table_specs import get_table


@dataclass(frozen=True)
class Paths:
    root: Path = Path(".")
    smpd: Path | None = None  # SMPD input directory; default: the simulated set under data/raw

    @property
    def smpd_dir(self) -> Path:
        return Path(self.smpd) if self.smpd is not None else self.root / "data/raw/smpd"

    @property
    def oracle(self) -> Path:
        """The simulator writes the noise-free expected labels beside the SMPD dir: ``<dir>.oracle.parquet``."""
        d = self.smpd_dir
        return d.with_name(d.name + ".oracle.parquet")

    @property
    def tables_dir(self) -> Path:
        return self.root / "data/tables"

    def table(self, name: str) -> Path:
        return self.root / get_table(name).path

    def fitted(self, name: str) -> Path:
        """A fitted transform or lookup table a stage learned on the train split (``data/fitted/<name>``):
        what serving loads instead of fitting (vocabularies, TF-IDF/SVD, scalers, running statistics)."""
        return self.root / "data/fitted" / name

    @property
    def model(self) -> Path:
        return self.root / "data/models/lgbm.txt"

    @property
    def stack_model(self) -> Path:
        return self.root / "data/models/stack.joblib"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def ingest_report(self) -> Path:
        return self.reports / "ingest_report.json"

    @property
    def train_info(self) -> Path:
        return self.reports / "train_lgbm.json"

    @property
    def metrics(self) -> Path:
        """The headline numbers (DVC metrics), one file per model: ``<model>.json`` with SRC/MAE/MSE per
        split (and the oracle ratio in the submitted model's file), so `dvc metrics show` is a row per model."""
        return self.reports / "metrics"

    @property
    def evaluation(self) -> Path:
        """Every evaluation figure: per split incl. train, row counts, the oracle's breakdown."""
        return self.reports / "evaluation.json"

    @property
    def plots(self) -> Path:
        return self.reports / "plots"

    @property
    def submission(self) -> Path:
        return self.reports / "submission.json"
