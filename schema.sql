-- leadstream schema, version 1.
--
-- Applied once to a new database (PRAGMA user_version = 0). Later changes go into
-- src/store/schema.rs as numbered migrations that move user_version forward; this file is never
-- edited in place once shipped, so an old database and a new one always agree.
--
-- Times are stored twice where they are filtered or sorted on: as text for people
-- (RFC 3339, UTC, `Z`) and as integers (unix seconds or milliseconds) for indexes.

-- Every signed POST /webhook, byte for byte, before anything else is done with it.
-- Meta has no delivery id and resends whole batches, so rows here are not deduplicated;
-- they are the audit trail ("what exactly did Meta send at 14:02?").
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    received_ms  INTEGER NOT NULL,              -- unix milliseconds
    kind         TEXT    NOT NULL,              -- 'leadgen' | 'messaging' | 'unusable' | 'mixed'
    note         TEXT,                          -- why an unusable body was kept, for people
    body         BLOB    NOT NULL               -- the raw bytes that were signed
);

-- One row per Meta lead id ever announced: the work queue of the enrichment worker.
-- UNIQUE leadgen_id is what makes a redelivered webhook add nothing.
CREATE TABLE jobs (
    leadgen_id       TEXT    PRIMARY KEY,       -- digits only, checked before insert
    page_id          TEXT,
    form_id          TEXT,
    ad_id            TEXT,
    adgroup_id       TEXT,
    webhook_created  INTEGER,                   -- created_time from the webhook, unix seconds
    delivery_id      INTEGER REFERENCES deliveries(id),
    state            TEXT    NOT NULL DEFAULT 'pending',  -- 'pending' | 'done' | 'dead'
    attempts         INTEGER NOT NULL DEFAULT 0,
    first_seen_ms    INTEGER NOT NULL,          -- when the job was created; retries stop 48 h later
    next_attempt_ms  INTEGER NOT NULL,          -- the worker leaves the job alone until then
    last_error       TEXT,                      -- Meta's message of the last failure, for people
    last_error_code  INTEGER,
    updated_ms       INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs(state, next_attempt_ms);

-- The leads themselves, saved exactly once per leadgen_id.
-- id is AUTOINCREMENT so ids are never reused: it is also the SSE event id, and a client
-- resuming from Last-Event-ID must never be shown a recycled id.
CREATE TABLE leads (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    leadgen_id       TEXT    NOT NULL UNIQUE,
    page_id          TEXT,
    form_id          TEXT,
    ad_id            TEXT,
    adgroup_id       TEXT,
    campaign_id      TEXT,
    created_time     TEXT    NOT NULL,          -- when the person sent the form, RFC 3339
    created_ts       INTEGER NOT NULL,          -- the same, unix seconds
    received_at      TEXT    NOT NULL,          -- when we saved it, RFC 3339 with milliseconds
    received_ms      INTEGER NOT NULL,          -- the same, unix milliseconds
    source           TEXT    NOT NULL,          -- 'webhook' | 'sync' | 'demo'
    name             TEXT    NOT NULL DEFAULT '',  -- display name, for sorting
    field_data       TEXT    NOT NULL,          -- Graph's field_data list, JSON
    search_text      TEXT    NOT NULL           -- lower-cased answers, names and ids for `q`
);
CREATE INDEX leads_created ON leads(created_ts);
CREATE INDEX leads_form ON leads(form_id, created_ts);
CREATE INDEX leads_page ON leads(page_id, created_ts);

-- Form names, learnt from sync (leadgen_forms) or a one-off Graph lookup; the dashboard
-- shows "Spring form" instead of a 15-digit id.
CREATE TABLE forms (
    form_id     TEXT PRIMARY KEY,
    page_id     TEXT,
    name        TEXT,
    status      TEXT,
    updated_ms  INTEGER NOT NULL
);

-- Dashboard sessions. Only a SHA-256 of the cookie value is kept, so a copy of the
-- database does not log anyone in. Rows survive restarts; logout deletes the row.
CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);

-- Small facts that must survive a restart: last sync time and result, last webhook, ...
CREATE TABLE state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
