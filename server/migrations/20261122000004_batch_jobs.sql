-- Clustered batch jobs (each firing runs once across instances), the embedding claim's
-- bookkeeping, and the admin e-mail list. See server/src/batch/.

-- One row per job. An instance fires a job by moving next_fire_at forward with a conditional
-- UPDATE (`... WHERE next_fire_at = <the value it read>`): of several instances that read the
-- same row, exactly one changes it, the others match 0 rows.
CREATE TABLE job_schedules (
    name              VARCHAR(64) NOT NULL PRIMARY KEY,
    -- As configured: `every 5s` or a cron expression with seconds.
    schedule          VARCHAR(200) NOT NULL,
    paused            BOOLEAN NOT NULL DEFAULT FALSE,
    -- The next scheduled fire time (UTC, database clock).
    next_fire_at      DATETIME(6) NOT NULL,
    -- The fire time of the last firing some instance acquired: every instance watches it to
    -- learn that a firing happened elsewhere (the embed pool wakes on it).
    last_fire_at      DATETIME(6) NULL,
    -- Set by POST /admin/jobs/{name}/trigger: the next poll of any instance fires the job once.
    trigger_requested BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at        DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per acquired firing. The unique (job, scheduled_at) makes a double firing a
-- constraint violation rather than a possibility.
CREATE TABLE job_runs (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job          VARCHAR(64) NOT NULL,
    -- The fire time this run is for (for a manual trigger: when it was fired).
    scheduled_at DATETIME(6) NOT NULL,
    -- schedule: on time (or late within the misfire threshold); misfire: late past the
    -- threshold, fired once for all the fire times missed; manual: the admin API.
    trigger_kind VARCHAR(16) NOT NULL,
    -- Fire times skipped by a misfire (0 otherwise).
    missed       INT UNSIGNED NOT NULL DEFAULT 0,
    instance_id  VARCHAR(64) NOT NULL,
    started_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    -- Renewed while the run is alive; a running row past it was abandoned by its runner.
    lease_until  DATETIME(6) NOT NULL,
    ended_at     DATETIME(6) NULL,
    outcome      VARCHAR(16) NOT NULL DEFAULT 'running',
    detail       VARCHAR(1000) NULL,
    CONSTRAINT uq_job_runs_fire UNIQUE (job, scheduled_at),
    CONSTRAINT ck_job_runs_outcome CHECK (outcome IN ('running', 'ok', 'failed', 'abandoned', 'skipped')),
    CONSTRAINT ck_job_runs_trigger CHECK (trigger_kind IN ('schedule', 'misfire', 'manual')),
    INDEX ix_job_runs_job (job, id),
    INDEX ix_job_runs_running (outcome, job)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The version claim's version: bumped by every claim (all strategies but naive), so a
-- worker can tell the rows it won from rows another worker won after it read them.
ALTER TABLE rental_items ADD COLUMN claim_version BIGINT UNSIGNED NOT NULL DEFAULT 0;

-- One row per claim attempt of an embed worker. claimed = 0 with candidates > 0 is a claim
-- that lost every row to another worker (wasted); candidates = 0 found nothing to do.
CREATE TABLE embed_claims (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    instance_id VARCHAR(64) NOT NULL,
    worker      INT UNSIGNED NOT NULL,
    strategy    VARCHAR(16) NOT NULL,
    claim_token VARCHAR(64) NOT NULL,
    candidates  INT UNSIGNED NOT NULL,
    claimed     INT UNSIGNED NOT NULL,
    at          DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    INDEX ix_embed_claims_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per item per embed call: committed, fenced (the claim was taken over), stale (the
-- content changed meanwhile) or failed (the embedder failed; the row went back to WAIT).
CREATE TABLE embed_attempts (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    item_id         BIGINT UNSIGNED NOT NULL,
    content_version BIGINT UNSIGNED NOT NULL,
    claim_token     VARCHAR(64) NOT NULL,
    instance_id     VARCHAR(64) NOT NULL,
    worker          INT UNSIGNED NOT NULL,
    at              DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    outcome         VARCHAR(16) NOT NULL,
    detail          VARCHAR(500) NULL,
    CONSTRAINT ck_embed_attempts_outcome CHECK (outcome IN ('committed', 'fenced', 'failed', 'stale')),
    INDEX ix_embed_attempts_item (item_id, content_version),
    INDEX ix_embed_attempts_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per committed embedding, written in the commit's transaction. Double commits:
-- SELECT item_id, content_version FROM embed_audit GROUP BY 1, 2 HAVING COUNT(*) > 1.
-- No foreign key: the record outlives a deleted item.
CREATE TABLE embed_audit (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    item_id         BIGINT UNSIGNED NOT NULL,
    content_version BIGINT UNSIGNED NOT NULL,
    claim_token     VARCHAR(64) NOT NULL,
    instance_id     VARCHAR(64) NOT NULL,
    committed_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    INDEX ix_embed_audit_item (item_id, content_version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- E-mails that get the admin role (setting SERVER_ADMIN_EMAILS). Each instance adds its list
-- at start-up, and sign-up reads it in the INSERT, so whichever instance a user signs up on,
-- the role is the same. Entries are only added: demote with SQL.
CREATE TABLE admin_emails (
    email    VARCHAR(254) NOT NULL PRIMARY KEY,
    added_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
