-- Fitted relation `vocab_user` (group `ids`): code of each user with a post in the TRAIN split,
-- 0..k-1 in uid order. A user with no train post has no row (their code is NULL).
SELECT uid, (row_number() OVER (ORDER BY uid) - 1)::INTEGER AS code
FROM (SELECT DISTINCT p.uid FROM posts p JOIN split s USING (pid) WHERE s.split = 'train')
ORDER BY code
