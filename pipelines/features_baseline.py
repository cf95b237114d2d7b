"""Stage features_baseline: minimal feature set: user metadata, posting time, category codes (train vocabulary), text lengths."""

from __future__ import annotations

from pipelines.feature_stage import make_stage

PARAMS: tuple[str, ...] = ()
run, main = make_stage("baseline", __doc__)

if __name__ == "__main__":
    main()
