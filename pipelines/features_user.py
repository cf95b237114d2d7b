"""Stage features_user: profile fields at post time and the user's activity so far (strictly earlier posts)."""

from __future__ import annotations

from pipelines.feature_stage import run_feature_stage
from pipelines.paths import Paths
from pipelines.stage import stage_main

PARAMS: tuple[str, ...] = ()


def run(paths: Paths, params: dict) -> dict:
    return run_feature_stage("user", paths, params)


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
