-- Chat between a renter and an item's owner (and whoever the owner adds): rooms, their
-- members, and their messages, each with a per-room sequence.
--
-- A room's `last_seq` row is locked by every transaction that stores a message in it, from
-- taking the next seq to the commit: seq n+1 can only be taken once n committed (or rolled
-- back, handing its number on). So a reader that sees seq n sees every seq below it, and
-- "everything after n" is an exact resume point for a client or an instance.
CREATE TABLE chat_rooms (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    item_id    BIGINT UNSIGNED NOT NULL,
    -- The renter who opened the room; one room per item and renter.
    renter_id  BIGINT UNSIGNED NOT NULL,
    owner_id   BIGINT UNSIGNED NOT NULL,
    last_seq   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT uq_chat_rooms_item_renter UNIQUE (item_id, renter_id),
    CONSTRAINT fk_chat_rooms_item FOREIGN KEY (item_id) REFERENCES rental_items (id) ON DELETE CASCADE,
    CONSTRAINT fk_chat_rooms_renter FOREIGN KEY (renter_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_chat_rooms_owner FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

CREATE TABLE chat_members (
    room_id       BIGINT UNSIGNED NOT NULL,
    user_id       BIGINT UNSIGNED NOT NULL,
    -- Messages up to this seq are read by this member.
    last_read_seq BIGINT UNSIGNED NOT NULL DEFAULT 0,
    joined_at     DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (room_id, user_id),
    INDEX ix_chat_members_user (user_id, room_id),
    CONSTRAINT fk_chat_members_room FOREIGN KEY (room_id) REFERENCES chat_rooms (id) ON DELETE CASCADE,
    CONSTRAINT fk_chat_members_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

CREATE TABLE chat_messages (
    room_id    BIGINT UNSIGNED NOT NULL,
    seq        BIGINT UNSIGNED NOT NULL,
    sender_id  BIGINT UNSIGNED NOT NULL,
    body       TEXT NOT NULL,
    -- The sender's idempotency key (STOMP header `idempotency-key`): a resend after a lost
    -- RECEIPT finds the message already stored instead of storing it twice.
    client_key VARCHAR(64) NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (room_id, seq),
    CONSTRAINT uq_chat_messages_key UNIQUE (room_id, sender_id, client_key),
    CONSTRAINT fk_chat_messages_room FOREIGN KEY (room_id) REFERENCES chat_rooms (id) ON DELETE CASCADE,
    CONSTRAINT fk_chat_messages_sender FOREIGN KEY (sender_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
