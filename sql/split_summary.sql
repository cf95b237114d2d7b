-- Rows, labelled rows and date range of each split.
SELECT s.split, count(*) AS posts, count(l.label) AS labelled,
       make_timestamp(min(s.postdate) * 1000000) AS first_post_utc, make_timestamp(max(s.postdate) * 1000000) AS last_post_utc,
       round(avg(l.label), 3) AS mean_label
FROM split s
LEFT JOIN labels l USING (pid)
GROUP BY s.split
ORDER BY min(s.postdate);
