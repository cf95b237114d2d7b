-- Popularity per category and subcategory on the training split (counts, mean, median, sd).
SELECT c.category, c.subcategory, count(*) AS posts,
       round(avg(l.label), 3) AS mean_label, round(median(l.label), 3) AS median_label,
       round(stddev_samp(l.label), 3) AS sd_label
FROM categories c
JOIN labels l USING (pid)
JOIN split s USING (pid)
WHERE s.split = 'train'
GROUP BY ALL
ORDER BY mean_label DESC;
