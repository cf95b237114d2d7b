"""Stage features_temporal: posting hour/weekday/month in local time, gaps to first photo and previous post, geotag."""

from __future__ import annotations

from pipelines.feature_stage import make_stage

PARAMS: tuple[str, ...] = ()
run, main = make_stage("temporal", __doc__)

if __name__ == "__main__":
    main()
