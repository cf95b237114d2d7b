-- Mean training label by the hour of posting in the user's local time.
SELECT f.base_time_hour_local AS hour, count(*) AS posts, round(avg(l.label), 3) AS mean_label
FROM features_baseline f
JOIN labels l USING (pid)
JOIN split s USING (pid)
WHERE s.split = 'train'
GROUP BY hour
ORDER BY hour;
