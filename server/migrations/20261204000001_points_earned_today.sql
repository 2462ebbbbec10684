-- What a user earned on the UTC day `earned_on`, kept on the balance row: an award reads it
-- with the balance, under the lock it takes anyway, instead of summing the day's log (one
-- statement an award less, and no range that grows with the day's awards). Reversals do not
-- lower it: the cap counts what was earned, not what was kept.
ALTER TABLE point_balances
    ADD COLUMN earned_on DATE NULL,
    ADD COLUMN earned_today BIGINT NOT NULL DEFAULT 0;

UPDATE point_balances b
SET b.earned_on = UTC_DATE(),
    b.earned_today = (
        SELECT COALESCE(SUM(l.delta), 0) FROM point_log l
        WHERE l.user_id = b.user_id AND l.reason IN ('diary_written', 'comment_written')
          AND l.created_at >= UTC_DATE()
    );
