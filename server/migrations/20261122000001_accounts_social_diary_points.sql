-- Accounts, friends, diaries, comments, guestbook, points, AI comment jobs.
-- Times are UTC (the pool sets time_zone = '+00:00'), DATETIME(6) for microseconds.

CREATE TABLE users (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email         VARCHAR(254) NOT NULL,
    display_name  VARCHAR(50)  NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    role          VARCHAR(16)  NOT NULL DEFAULT 'user',
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT uq_users_email UNIQUE (email),
    CONSTRAINT ck_users_role CHECK (role IN ('user', 'admin'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A request from one user to another; accepted requests become two friendship rows.
CREATE TABLE friend_requests (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    from_user  BIGINT UNSIGNED NOT NULL,
    to_user    BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT uq_friend_requests_pair UNIQUE (from_user, to_user),
    CONSTRAINT ck_friend_requests_not_self CHECK (from_user <> to_user),
    CONSTRAINT fk_friend_requests_from FOREIGN KEY (from_user) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_friend_requests_to FOREIGN KEY (to_user) REFERENCES users (id) ON DELETE CASCADE,
    INDEX ix_friend_requests_to (to_user, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Symmetric: (a, b) and (b, a) are both present, so "friends of x" is one index range.
CREATE TABLE friendships (
    user_id    BIGINT UNSIGNED NOT NULL,
    friend_id  BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (user_id, friend_id),
    CONSTRAINT fk_friendships_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_friendships_friend FOREIGN KEY (friend_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE diaries (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    author_id  BIGINT UNSIGNED NOT NULL,
    title      VARCHAR(200) NOT NULL,
    content    TEXT NOT NULL,
    emotion    VARCHAR(16) NOT NULL,
    visibility VARCHAR(16) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT ck_diaries_visibility CHECK (visibility IN ('private', 'friends')),
    CONSTRAINT fk_diaries_author FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE CASCADE,
    -- Keyset pagination of one author's diaries, newest first.
    INDEX ix_diaries_author (author_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE comments (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    diary_id   BIGINT UNSIGNED NOT NULL,
    -- NULL for the AI's comment.
    author_id  BIGINT UNSIGNED NULL,
    content    TEXT NOT NULL,
    -- Set to diary_id for the AI comment only: at most one AI comment per diary, so a job
    -- that runs twice (a retry, a second worker) cannot post twice.
    ai_for_diary BIGINT UNSIGNED NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT uq_comments_ai_for_diary UNIQUE (ai_for_diary),
    CONSTRAINT fk_comments_diary FOREIGN KEY (diary_id) REFERENCES diaries (id) ON DELETE CASCADE,
    CONSTRAINT fk_comments_author FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE CASCADE,
    INDEX ix_comments_diary (diary_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE guestbook_entries (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    owner_id   BIGINT UNSIGNED NOT NULL,
    author_id  BIGINT UNSIGNED NOT NULL,
    content    VARCHAR(1000) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT fk_guestbook_owner FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_guestbook_author FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE CASCADE,
    INDEX ix_guestbook_owner (owner_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The balance row is the serialisation point of one user's point changes: every change is
-- one conditional UPDATE of this row plus one log INSERT, in one transaction.
CREATE TABLE point_balances (
    user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    balance BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT ck_point_balances_non_negative CHECK (balance >= 0),
    CONSTRAINT fk_point_balances_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

CREATE TABLE point_log (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id       BIGINT UNSIGNED NOT NULL,
    delta         BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    reason        VARCHAR(32) NOT NULL,
    -- The diary or comment an award is for; an award is given once per (reason, ref).
    ref_id        BIGINT UNSIGNED NULL,
    created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    CONSTRAINT uq_point_log_award UNIQUE (user_id, reason, ref_id),
    CONSTRAINT fk_point_log_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    -- Keyset pagination: page 1,000 is one index range scan, like page 1.
    INDEX ix_point_log_user (user_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Durable work queue for AI comments, written in the diary's transaction: a diary committed
-- is a job that exists, whatever happens to the process afterwards.
CREATE TABLE ai_comment_jobs (
    diary_id        BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    status          VARCHAR(16) NOT NULL DEFAULT 'waiting',
    attempts        INT NOT NULL DEFAULT 0,
    run_after       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    claimed_by      VARCHAR(64) NULL,
    claim_expires   DATETIME(6) NULL,
    last_error      VARCHAR(500) NULL,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    finished_at     DATETIME(6) NULL,
    CONSTRAINT ck_ai_jobs_status CHECK (status IN ('waiting', 'running', 'done', 'failed')),
    CONSTRAINT fk_ai_jobs_diary FOREIGN KEY (diary_id) REFERENCES diaries (id) ON DELETE CASCADE,
    INDEX ix_ai_jobs_due (status, run_after)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
