"""Stage features_user: profile fields at post time and the user's activity so far (strictly earlier posts)."""

from __future__ import annotations

from pipelines.feature_stage import make_stage

PARAMS: tuple[str, ...] = ()
run, main = make_stage("user", __doc__)

if __name__ == "__main__":
    main()
