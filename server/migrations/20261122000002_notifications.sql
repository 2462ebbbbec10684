-- Notifications: one row per (recipient, cause). The unique key makes a redelivered
-- "store" message harmless: an idempotent consumer.
CREATE TABLE notifications (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    recipient_id BIGINT UNSIGNED NOT NULL,
    kind         VARCHAR(16) NOT NULL,
    cause_id     BIGINT UNSIGNED NOT NULL,
    actor_id     BIGINT UNSIGNED NOT NULL,
    created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    read_at      DATETIME(6) NULL,
    -- Outbox strategy only: set when the relay has published the row to the fanout.
    relayed_at   DATETIME(6) NULL,
    CONSTRAINT uq_notifications_cause UNIQUE (recipient_id, kind, cause_id),
    CONSTRAINT ck_notifications_kind CHECK (kind IN ('diary', 'comment')),
    CONSTRAINT fk_notifications_recipient FOREIGN KEY (recipient_id) REFERENCES users (id) ON DELETE CASCADE,
    -- Replay after Last-Event-ID and keyset listing: one range of this index.
    INDEX ix_notifications_recipient (recipient_id, id),
    -- The outbox relay finds unrelayed rows here.
    INDEX ix_notifications_relay (relayed_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
