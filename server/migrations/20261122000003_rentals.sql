-- Rentals: items lent between users, reservations of them, and the items' embeddings.
-- Dates of a reservation are calendar days (DATE), both ends inclusive.

CREATE TABLE rental_items (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    owner_id        BIGINT UNSIGNED NOT NULL,
    title           VARCHAR(200) NOT NULL,
    description     TEXT NOT NULL,
    category        VARCHAR(16) NOT NULL,
    price_per_day   INT UNSIGNED NOT NULL,
    deposit         INT UNSIGNED NOT NULL,
    location        VARCHAR(200) NOT NULL DEFAULT '',
    photo_urls      JSON NOT NULL,
    -- Bumped whenever title, description or category change: an embedding is of one version,
    -- and a worker's result for an older version is thrown away.
    content_version BIGINT UNSIGNED NOT NULL DEFAULT 1,
    -- WAIT: needs an embedding; PENDING: a worker claimed it; DONE: the embedding of
    -- content_version is in rental_embeddings. A content change sets WAIT again.
    embed_status    ENUM('WAIT', 'PENDING', 'DONE') NOT NULL DEFAULT 'WAIT',
    -- The claim of the worker that set PENDING: its fencing token, who, and until when (a
    -- claim past claimed_until may be taken over). Written by the embedding claim only.
    claim_token     VARCHAR(64) NULL,
    claimed_by      VARCHAR(64) NULL,
    claimed_until   DATETIME(6) NULL,
    -- Bumped by every approval: two approvals that read the same value cannot both commit
    -- (see rental::reservations::approve).
    booking_version BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT ck_rental_items_category
        CHECK (category IN ('camping', 'tools', 'electronics', 'sports', 'kids', 'home', 'fashion', 'other')),
    CONSTRAINT ck_rental_items_prices CHECK (price_per_day <= 10000000 AND deposit <= 10000000),
    CONSTRAINT fk_rental_items_owner FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE,
    INDEX ix_rental_items_owner (owner_id, id),
    INDEX ix_rental_items_category (category, id),
    -- The embedding claim scans WAIT (and expired PENDING) rows in id order.
    INDEX ix_rental_items_embed (embed_status, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE rental_reservations (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    item_id      BIGINT UNSIGNED NOT NULL,
    requester_id BIGINT UNSIGNED NOT NULL,
    start_date   DATE NOT NULL,
    end_date     DATE NOT NULL,
    status       VARCHAR(16) NOT NULL DEFAULT 'requested',
    -- Bumped by every status change: a decision made on a stale read changes nothing.
    version      BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT ck_rental_reservations_status
        CHECK (status IN ('requested', 'approved', 'rejected', 'cancelled', 'returned')),
    CONSTRAINT ck_rental_reservations_dates CHECK (end_date >= start_date),
    CONSTRAINT fk_rental_reservations_item FOREIGN KEY (item_id) REFERENCES rental_items (id) ON DELETE CASCADE,
    CONSTRAINT fk_rental_reservations_requester
        FOREIGN KEY (requester_id) REFERENCES users (id) ON DELETE CASCADE,
    -- Overlap checks: one item's approved reservations by start date.
    INDEX ix_rental_reservations_item (item_id, status, start_date),
    INDEX ix_rental_reservations_requester (requester_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Vectors live in their own table because MariaDB 11.8 indexes only a NOT NULL VECTOR column,
-- and an item has no vector until a worker embedded it.
CREATE TABLE rental_embeddings (
    item_id         BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    -- The item's content_version this vector was computed from.
    content_version BIGINT UNSIGNED NOT NULL,
    -- Vectors of different embedders are not comparable: search uses only the current one's.
    embedder        VARCHAR(32) NOT NULL,
    embedding       VECTOR(384) NOT NULL,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT fk_rental_embeddings_item FOREIGN KEY (item_id) REFERENCES rental_items (id) ON DELETE CASCADE,
    VECTOR INDEX ix_rental_embeddings_embedding (embedding) DISTANCE = cosine
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
