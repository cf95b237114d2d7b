-- Feature group `temporal`: posting time in the user's local time (UTC where the offset is
-- unknown, flagged), gaps to the user's first photo and previous post, geotag.
WITH t AS (
    SELECT p.pid, p.uid, p.postdate, u.tz_offset_minutes, u.photo_firstdate,
           p.postdate + coalesce(u.tz_offset_minutes, 0) * 60 AS t_local
    FROM posts p JOIN users u USING (pid)
),
prev AS (
    SELECT pid,
        max(postdate) OVER (PARTITION BY uid ORDER BY postdate
                            RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_postdate
    FROM t
)
SELECT
    t.pid,
    t.postdate,
    (t.tz_offset_minutes IS NULL)::DOUBLE                      AS time_tz_unknown,
    ((t.t_local % 86400) / 3600.0)::DOUBLE                     AS time_hour_local,
    (((t.t_local // 86400) + 3) % 7)::DOUBLE                   AS time_weekday_local,     -- 0 = Monday
    ((((t.t_local // 86400) + 3) % 7) >= 5)::DOUBLE            AS time_weekend_local,
    month(make_timestamp(t.t_local * 1000000))::DOUBLE         AS time_month_local,
    dayofyear(make_timestamp(t.t_local * 1000000))::DOUBLE     AS time_day_of_year,
    (t.postdate / 86400.0)                                     AS time_days_since_epoch,
    (t.postdate - t.photo_firstdate) / 86400.0                 AS time_days_since_first_photo,
    (t.postdate - prev.prev_postdate) / 86400.0                AS time_days_since_prev_post,
    tp.has_geo::DOUBLE                                         AS geo_has_geo,
    tp.geoaccuracy::DOUBLE                                     AS geo_accuracy,
    tp.latitude                                                AS geo_latitude,
    tp.longitude                                               AS geo_longitude
FROM t
JOIN prev USING (pid)
JOIN temporal tp USING (pid)
ORDER BY t.pid
