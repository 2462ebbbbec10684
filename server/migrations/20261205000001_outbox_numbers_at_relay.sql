-- An outbox row is written without its seq (NULL) in the cause's transaction, and numbered by
-- a relay pass in a short transaction of its own, up to 200 rows at a time, before it is
-- published. Numbering in the cause's transaction locked every recipient's stream row from the
-- insert to the cause's commit: at 750 events/s the outbox's causes waited for those locks
-- 16,832-21,901 times in 45 s, against 5,053 for `rabbitmq`, whose store transactions take them
-- once for a whole batch (`reports/README.md`). The guarantee is the one the migration
-- `20261202000001_notification_seq.sql` gives: a seq is taken under the stream row's lock and
-- committed before anyone sees it, so when seq n is visible every seq below n is too. A row
-- without a seq is not yet part of its recipient's stream: replay, the list and the head skip
-- it (`seq > n` and `seq IS NOT NULL` leave NULL out). Several NULLs per recipient are allowed
-- by `uq_notifications_seq`, as by every unique key.
ALTER TABLE notifications MODIFY seq BIGINT UNSIGNED NULL;

-- Only a row waiting for the outbox relay may lack its seq: a row the relay published, or one
-- stored by a strategy without a relay (`relayed_at` set at insert), is numbered. It also
-- keeps the one-round-trip store failing for a recipient without a stream row (its seq comes
-- out NULL), as the NOT NULL column did, instead of storing a row no stream would ever send.
ALTER TABLE notifications
    ADD CONSTRAINT ck_notifications_numbered CHECK (seq IS NOT NULL OR relayed_at IS NULL);

-- The relay's two claims each read only their own rows: the numbering claim the unnumbered ones
-- (`relayed_at IS NULL AND seq IS NULL`, in id order), the publishing claim the numbered ones
-- (`relayed_at IS NULL AND seq IS NOT NULL`, in seq order). With `(relayed_at, id)` each read
-- and skipped the other's rows, row by row: at 650 events/s, 7,178 rows waiting (4,482 of them
-- unnumbered), a numbering pass took 70-103 ms and the database read 132 rows per event.
ALTER TABLE notifications
    DROP INDEX ix_notifications_relay,
    ADD INDEX ix_notifications_relay (relayed_at, seq, id);
