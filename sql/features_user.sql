-- Feature group `user`: official profile fields at post time plus the user's activity so far.
-- Point in time: "so far" counts the same user's posts published strictly earlier (no labels).
WITH p AS (
    SELECT p.pid, p.uid, p.postdate FROM posts p
),
activity AS (
    SELECT pid,
        count(*) OVER w                                    AS posts_before,
        min(postdate) OVER w                               AS first_seen,
        count(*) OVER (PARTITION BY uid ORDER BY postdate
                       RANGE BETWEEN 2592000 PRECEDING AND 1 PRECEDING) AS posts_last_30d
    FROM p
    WINDOW w AS (PARTITION BY uid ORDER BY postdate RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT
    p.pid,
    p.postdate,
    u.photo_count::DOUBLE                                                   AS user_photo_count,
    ln(1 + u.photo_count)::DOUBLE                                           AS user_log_photo_count,
    u.ispro::DOUBLE                                                         AS user_ispro,
    u.canbuypro::DOUBLE                                                     AS user_canbuypro,
    u.tz_offset_minutes::DOUBLE                                             AS user_tz_offset_minutes,
    (u.timezone_id IS NOT NULL)::DOUBLE                                     AS user_has_timezone_id,
    (p.postdate - u.photo_firstdate) / 86400.0                              AS user_account_age_days,
    (p.postdate - u.photo_firstdatetaken) / 86400.0                         AS user_days_since_first_taken,
    (a.pathalias IS NOT NULL)::DOUBLE                                       AS user_has_pathalias,
    (u.user_description IS NOT NULL OR u.user_description_vec IS NOT NULL)::DOUBLE         AS user_has_description,
    length(coalesce(u.user_description, ''))::DOUBLE                        AS user_description_chars,
    (u.location_description IS NOT NULL OR u.location_description_vec IS NOT NULL)::DOUBLE AS user_has_location,
    length(coalesce(u.location_description, ''))::DOUBLE                    AS user_location_chars,
    act.posts_before::DOUBLE                                                AS user_posts_before,
    act.posts_last_30d::DOUBLE                                              AS user_posts_last_30d,
    CASE WHEN act.posts_before = 0 THEN NULL
         ELSE act.posts_before / ((p.postdate - act.first_seen) / 86400.0 + 1) END AS user_posts_per_day_before
FROM p
JOIN users u USING (pid)
JOIN additional a USING (pid)
JOIN activity act USING (pid)
ORDER BY p.pid
