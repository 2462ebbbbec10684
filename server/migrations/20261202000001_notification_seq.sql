-- A per-recipient sequence of notifications, assigned in commit order: the SSE stream's
-- `id:` and the `Last-Event-ID` a client resumes from.
--
-- Notification ids are assigned at insert, but transactions commit (and brokers deliver) in
-- another order, so a client that resumed after id 1595 never got 1586, committed a moment
-- later (measured under client churn). A recipient's sequence row is locked by every
-- transaction that stores a notification for them, from the assignment to the commit: the
-- next seq can only be taken after the previous one committed (or rolled back, handing its
-- number on). So when seq n is visible, every seq below n is too, and "everything after n" is
-- an exact resume point.
CREATE TABLE notification_streams (
    recipient_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    -- The highest seq stored for the recipient.
    last_seq     BIGINT UNSIGNED NOT NULL DEFAULT 0,
    CONSTRAINT fk_notification_streams_user FOREIGN KEY (recipient_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

ALTER TABLE notifications ADD COLUMN seq BIGINT UNSIGNED NULL AFTER recipient_id;

-- Existing rows: numbered in id order per recipient (the best order there is for them).
CREATE TEMPORARY TABLE notification_seq_backfill AS
    SELECT id, ROW_NUMBER() OVER (PARTITION BY recipient_id ORDER BY id) AS seq FROM notifications;
UPDATE notifications n JOIN notification_seq_backfill b ON b.id = n.id SET n.seq = b.seq;
DROP TEMPORARY TABLE notification_seq_backfill;

INSERT INTO notification_streams (recipient_id, last_seq)
    SELECT u.id, COALESCE(MAX(n.seq), 0) FROM users u LEFT JOIN notifications n ON n.recipient_id = u.id GROUP BY u.id;

ALTER TABLE notifications
    MODIFY seq BIGINT UNSIGNED NOT NULL,
    -- Replay after a seq: one range of this index.
    ADD CONSTRAINT uq_notifications_seq UNIQUE (recipient_id, seq);
