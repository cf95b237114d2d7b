-- Users with the most training posts and their popularity. Bind $min_posts (e.g. --param min_posts=20).
SELECT p.uid, count(*) AS posts, round(avg(l.label), 3) AS mean_label, max(u.photo_count) AS photo_count,
       max(u.ispro) AS ispro
FROM posts p
JOIN labels l USING (pid)
JOIN split s USING (pid)
JOIN users u USING (pid)
WHERE s.split = 'train'
GROUP BY p.uid
HAVING count(*) >= CAST($min_posts AS INTEGER)
ORDER BY posts DESC;
