-- Feature group `baseline` (columns prefixed base_): the minimal set: user metadata, posting time, category codes, text lengths, geotag.
-- Category codes come from the fitted relations vocab_category, vocab_subcategory and vocab_concept
-- (sql/fitted_vocab_*.sql: TRAIN split only; values unseen in train -> NULL). Each row reads only
-- its own post's rows.
-- Local time uses the user's UTC offset where known (tz_known = false -> UTC).
WITH local AS (
    SELECT p.pid, p.postdate + coalesce(u.tz_offset_minutes, 0) * 60 AS t_local
    FROM posts p JOIN users u USING (pid)
)
SELECT
    p.pid,
    p.postdate,
    -- user metadata
    u.photo_count::DOUBLE                                         AS base_user_photo_count,
    u.ispro::DOUBLE                                               AS base_user_ispro,
    u.canbuypro::DOUBLE                                           AS base_user_canbuypro,
    u.tz_offset_minutes::DOUBLE                                   AS base_user_tz_offset_minutes,
    (p.postdate - u.photo_firstdate) / 86400.0                    AS base_user_account_age_days,
    (p.postdate - u.photo_firstdatetaken) / 86400.0               AS base_user_days_since_first_taken,
    (a.pathalias IS NOT NULL)::DOUBLE                             AS base_user_has_pathalias,
    (u.user_description IS NOT NULL OR u.user_description_vec IS NOT NULL)::DOUBLE         AS base_user_has_description,
    (u.location_description IS NOT NULL OR u.location_description_vec IS NOT NULL)::DOUBLE AS base_user_has_location,
    -- posting time
    (u.tz_offset_minutes IS NOT NULL)::DOUBLE                     AS base_time_tz_known,
    ((l.t_local % 86400) // 3600)::DOUBLE                         AS base_time_hour_local,
    (((l.t_local // 86400) + 3) % 7)::DOUBLE                      AS base_time_weekday_local,  -- 0 = Monday
    month(make_timestamp(l.t_local * 1000000))::DOUBLE            AS base_time_month_local,
    (p.postdate / 86400.0)                                        AS base_time_days_since_epoch,
    -- category codes (train vocabulary)
    vc.code                                                       AS base_cat_category_code,
    vs.code                                                       AS base_cat_subcategory_code,
    vn.code                                                       AS base_cat_concept_code,
    -- text lengths
    length(coalesce(t.title, ''))::DOUBLE                         AS base_text_title_chars,
    CASE WHEN trim(coalesce(t.title, '')) = '' THEN 0
         ELSE len(string_split(trim(t.title), ' ')) END::DOUBLE   AS base_text_title_words,
    CASE WHEN trim(coalesce(t.alltags, '')) = '' THEN 0
         ELSE len(string_split(trim(t.alltags), ' ')) END::DOUBLE AS base_text_tag_count,
    length(coalesce(t.alltags, ''))::DOUBLE                       AS base_text_tags_chars,
    (t.mediatype = 'video')::DOUBLE                               AS base_text_is_video,
    -- geotag
    tp.has_geo::DOUBLE                                            AS base_geo_has_geo,
    tp.geoaccuracy::DOUBLE                                        AS base_geo_accuracy
FROM posts p
JOIN users u USING (pid)
JOIN local l USING (pid)
JOIN additional a USING (pid)
JOIN text t USING (pid)
JOIN temporal tp USING (pid)
JOIN categories c USING (pid)
LEFT JOIN vocab_category vc ON vc.category = c.category
LEFT JOIN vocab_subcategory vs ON vs.subcategory = c.subcategory
LEFT JOIN vocab_concept vn ON vn.concept = c.concept
ORDER BY p.pid
