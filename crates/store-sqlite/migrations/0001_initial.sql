-- orgsync store, SQLite. Timestamps are INTEGER Unix milliseconds; JSON is TEXT.

CREATE TABLE app_users (
    directory_id    TEXT PRIMARY KEY NOT NULL CHECK (length(directory_id) > 0),
    primary_email   TEXT NOT NULL,
    email_lower     TEXT NOT NULL,
    given_name      TEXT NOT NULL,
    family_name     TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    is_admin        INTEGER NOT NULL,
    suspended       INTEGER NOT NULL,
    archived        INTEGER NOT NULL,
    org_unit_path   TEXT NOT NULL,
    department      TEXT,
    title           TEXT,
    phones          TEXT NOT NULL,
    custom_schemas  TEXT NOT NULL,
    roles           TEXT NOT NULL,
    active          INTEGER NOT NULL,
    directory_etag  TEXT,
    content_hash    TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deactivated_at  INTEGER,
    last_synced_at  INTEGER NOT NULL
);
CREATE INDEX app_users_email_lower ON app_users (email_lower);
CREATE INDEX app_users_active ON app_users (active, directory_id);

CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key  TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL
                     CHECK (kind IN ('created', 'updated', 'deactivated', 'reactivated', 'deleted')),
    directory_id     TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    leased_until     INTEGER,
    delivered_at     INTEGER,
    last_error       TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, seq) WHERE delivered_at IS NULL;
CREATE INDEX outbox_user_pending ON outbox (directory_id, seq) WHERE delivered_at IS NULL;
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;

CREATE TABLE sync_state (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE contacts_user_state (
    target_id      TEXT PRIMARY KEY NOT NULL,
    target_email   TEXT NOT NULL,
    sync_token     TEXT,
    view_hash      TEXT,
    managed_group  TEXT,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE channels (
    id            TEXT PRIMARY KEY NOT NULL,
    resource_id   TEXT NOT NULL,
    resource_uri  TEXT,
    event         TEXT NOT NULL,
    token         TEXT NOT NULL,
    address       TEXT NOT NULL,
    expiration    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    stopped_at    INTEGER,
    replaced_by   TEXT
);
CREATE INDEX channels_expiration ON channels (expiration);

CREATE TABLE notifications (
    channel_id      TEXT NOT NULL,
    message_number  INTEGER NOT NULL,
    resource_state  TEXT NOT NULL,
    user_id         TEXT,
    received_at     INTEGER NOT NULL,
    PRIMARY KEY (channel_id, message_number)
);
CREATE INDEX notifications_received_at ON notifications (received_at);

CREATE TABLE jobs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    kind               TEXT NOT NULL,
    directory_user_id  TEXT,
    user_email         TEXT,
    payload            TEXT NOT NULL,
    dedupe_key         TEXT,
    state              TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    run_at             INTEGER NOT NULL,
    locked_by          TEXT,
    locked_until       INTEGER,
    last_error         TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
-- At most one pending job per dedupe key: further enqueues coalesce into it.
CREATE UNIQUE INDEX jobs_pending_dedupe ON jobs (dedupe_key)
    WHERE state = 'pending' AND dedupe_key IS NOT NULL;
CREATE INDEX jobs_due ON jobs (state, run_at, id);
CREATE INDEX jobs_failed ON jobs (attempts) WHERE last_error IS NOT NULL;

CREATE TABLE leases (
    name         TEXT PRIMARY KEY NOT NULL,
    holder       TEXT NOT NULL,
    acquired_at  INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
