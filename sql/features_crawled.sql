-- Feature group `crawled`: the unofficial crawled user statistics (FORMAT.md §10) of the post's
-- Pathalias. A snapshot taken after the posts were published, not point in time: it holds no
-- label of this data set, but the views/faves include what the posts themselves received.
-- Users without a Pathalias, without a crawled row, or with a failed (all-zero) crawl get NULL
-- statistics and say which of these it was.
SELECT
    p.pid,
    p.postdate,
    (c.pathalias IS NOT NULL)::DOUBLE                                    AS crawl_found,
    coalesce(c.crawl_failed, false)::DOUBLE                              AS crawl_failed,
    ln(1 + c.totalViews)::DOUBLE                                         AS crawl_log_views,
    ln(1 + c.totalTags)::DOUBLE                                          AS crawl_log_tags,
    ln(1 + c.totalGeotagged)::DOUBLE                                     AS crawl_log_geotagged,
    ln(1 + c.totalFaves)::DOUBLE                                         AS crawl_log_faves,
    ln(1 + c.totalInGroup)::DOUBLE                                       AS crawl_log_in_group,
    ln(1 + c.photoCount)::DOUBLE                                         AS crawl_log_photos,
    ln(1 + c.followerCount)::DOUBLE                                      AS crawl_log_followers,
    ln(1 + c.followingCount)::DOUBLE                                     AS crawl_log_following,
    ln((1 + c.totalViews) / (1 + c.photoCount))::DOUBLE                  AS crawl_log_views_per_photo,
    ln((1 + c.totalFaves) / (1 + c.totalViews))::DOUBLE                  AS crawl_log_faves_per_view,
    ln((1 + c.followerCount) / (1 + c.followingCount))::DOUBLE           AS crawl_log_follower_ratio,
    ln((1 + c.totalTags) / (1 + c.photoCount))::DOUBLE                   AS crawl_log_tags_per_photo,
    ln((1 + c.totalGeotagged) / (1 + c.photoCount))::DOUBLE              AS crawl_log_geotagged_per_photo,
    ln((1 + c.totalInGroup) / (1 + c.photoCount))::DOUBLE                AS crawl_log_in_group_per_photo
FROM posts p
JOIN additional a USING (pid)
LEFT JOIN crawled_users c ON c.pathalias = a.pathalias
ORDER BY p.pid
