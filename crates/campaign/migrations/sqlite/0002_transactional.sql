-- Transactional messages (SPEC §3.7, docs/transactional.md). A template's version is a delivery
-- of kind 1 that is always Running and never finishes: each call is one log row of it, so the
-- statuses, the event intake, the KPIs and the address quarantine are the campaign layer's own.
-- The data of a call is a recipient of the template's list (state 2: never imported, never
-- listed, never discarded as a stale import).
ALTER TABLE delivery ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;

CREATE TABLE tx_template (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    list_id    INTEGER NOT NULL REFERENCES recipient_list(id),
    current    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE tx_version (
    template_id INTEGER NOT NULL REFERENCES tx_template(id),
    version     INTEGER NOT NULL,
    delivery_id INTEGER NOT NULL UNIQUE REFERENCES delivery(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (template_id, version)
) WITHOUT ROWID;

-- One row per accepted call; its id is the log row's. `idem_key` is the caller's idempotency
-- key while its window lasts (NULL without one, or once a later call took the key over after
-- the window); `payload_hash` tells a repeat from a different call under the same key.
CREATE TABLE tx_call (
    log_id       INTEGER PRIMARY KEY REFERENCES log_row(id) ON DELETE CASCADE,
    template_id  INTEGER NOT NULL REFERENCES tx_template(id),
    idem_key     TEXT,
    payload_hash INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX tx_call_key ON tx_call(idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX tx_call_by_template ON tx_call(template_id, log_id);
