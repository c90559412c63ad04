-- orgsync store, PostgreSQL. Timestamps are BIGINT Unix milliseconds (as on SQLite, so both
-- backends compare times identically); JSON is JSONB.

CREATE TABLE app_users (
    directory_id    TEXT PRIMARY KEY CHECK (length(directory_id) > 0),
    primary_email   TEXT NOT NULL,
    email_lower     TEXT NOT NULL,
    given_name      TEXT NOT NULL,
    family_name     TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    is_admin        BOOLEAN NOT NULL,
    suspended       BOOLEAN NOT NULL,
    archived        BOOLEAN NOT NULL,
    org_unit_path   TEXT NOT NULL,
    department      TEXT,
    title           TEXT,
    phones          JSONB NOT NULL,
    custom_schemas  JSONB NOT NULL,
    roles           JSONB NOT NULL,
    active          BOOLEAN NOT NULL,
    directory_etag  TEXT,
    content_hash    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deactivated_at  BIGINT,
    last_synced_at  BIGINT NOT NULL
);
CREATE INDEX app_users_email_lower ON app_users (email_lower);
CREATE INDEX app_users_active ON app_users (active, directory_id);

CREATE TABLE outbox (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key  UUID NOT NULL UNIQUE,
    kind             TEXT NOT NULL
                     CHECK (kind IN ('created', 'updated', 'deactivated', 'reactivated', 'deleted')),
    directory_id     TEXT NOT NULL,
    payload          JSONB NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    leased_until     BIGINT,
    delivered_at     BIGINT,
    last_error       TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, seq) WHERE delivered_at IS NULL;
CREATE INDEX outbox_user_pending ON outbox (directory_id, seq) WHERE delivered_at IS NULL;
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;

CREATE TABLE sync_state (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE contacts_user_state (
    target_id      TEXT PRIMARY KEY,
    target_email   TEXT NOT NULL,
    sync_token     TEXT,
    view_hash      TEXT,
    managed_group  TEXT,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE channels (
    id            TEXT PRIMARY KEY,
    resource_id   TEXT NOT NULL,
    resource_uri  TEXT,
    event         TEXT NOT NULL,
    token         TEXT NOT NULL,
    address       TEXT NOT NULL,
    expiration    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    stopped_at    BIGINT,
    replaced_by   TEXT
);
CREATE INDEX channels_expiration ON channels (expiration);

CREATE TABLE notifications (
    channel_id      TEXT NOT NULL,
    message_number  BIGINT NOT NULL,
    resource_state  TEXT NOT NULL,
    user_id         TEXT,
    received_at     BIGINT NOT NULL,
    PRIMARY KEY (channel_id, message_number)
);
CREATE INDEX notifications_received_at ON notifications (received_at);

CREATE TABLE jobs (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind               TEXT NOT NULL,
    directory_user_id  TEXT,
    user_email         TEXT,
    payload            JSONB NOT NULL,
    dedupe_key         TEXT,
    state              TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    run_at             BIGINT NOT NULL,
    locked_by          TEXT,
    locked_until       BIGINT,
    last_error         TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
-- At most one pending job per dedupe key: further enqueues coalesce into it.
CREATE UNIQUE INDEX jobs_pending_dedupe ON jobs (dedupe_key)
    WHERE state = 'pending' AND dedupe_key IS NOT NULL;
CREATE INDEX jobs_due ON jobs (state, run_at, id);
CREATE INDEX jobs_failed ON jobs (attempts) WHERE last_error IS NOT NULL;

CREATE TABLE leases (
    name         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    acquired_at  BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
