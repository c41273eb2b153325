-- The campaign layer's schema on SQLite. Sizes matter for log_row (budget: 200 bytes a row with
-- its indexes): small integers for codes, dictionaries for repeated text, NULL (one header byte)
-- for what a row does not have. SQLite appends the rowid to every index entry, so the indexes
-- below end at the filtered columns and still come out ordered by id.

-- Recipient lists. An import writes into a list in state 0 (importing) and flips it to 1 (ready)
-- or folds it into its target when it commits, so a failed import leaves nothing behind.
CREATE TABLE recipient_list (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    state      INTEGER NOT NULL,
    target_id  INTEGER REFERENCES recipient_list(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX recipient_list_name ON recipient_list(name) WHERE state = 1;
CREATE INDEX recipient_list_state ON recipient_list(state, updated_at);

CREATE TABLE recipient (
    id         INTEGER PRIMARY KEY,
    list_id    INTEGER NOT NULL REFERENCES recipient_list(id) ON DELETE CASCADE,
    email      TEXT    NOT NULL,
    attributes TEXT    NOT NULL
);
CREATE INDEX recipient_by_list ON recipient(list_id);

CREATE TABLE delivery (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    from_addr     TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    text_template TEXT,
    html_template TEXT,
    list_id       INTEGER NOT NULL REFERENCES recipient_list(id),
    validity_ms   INTEGER NOT NULL,
    pool          TEXT,
    state         INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    started_at    INTEGER,
    ended_at      INTEGER
);

-- Distinct recipient domains: a log row holds a small id instead of the name.
CREATE TABLE domain (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- Distinct failures (type, reason, class, exact text, rule). `hash` is FNV-1a over all of them:
-- the index holds 8 bytes per entry instead of the text; a hit is confirmed by comparing fields.
-- class 0 means "not from the MTA".
CREATE TABLE failure (
    id     INTEGER PRIMARY KEY,
    hash   INTEGER NOT NULL,
    ftype  INTEGER NOT NULL,
    reason INTEGER NOT NULL,
    class  INTEGER NOT NULL,
    text   TEXT    NOT NULL,
    rule   TEXT    NOT NULL
);
CREATE INDEX failure_hash ON failure(hash);

-- One row per targeted recipient of a delivery. `reason` repeats failure.reason so that the
-- reason filter has its own index; `claim_until` is the lease of a sender that claimed a Pending
-- row and has not yet reported it Taken; `feedback` holds model::Feedback's bits. The MTA's message id is `mta_id` when it has the MTA's
-- form (16 hex digits, stored as the 64-bit number), else `message_id`. `attempts` is a compact
-- blob (store/codec.rs) and `events` the 64-bit hashes of the last events applied to the row,
-- which make event ingestion idempotent without a table of its own.
CREATE TABLE log_row (
    id            INTEGER PRIMARY KEY,
    delivery_id   INTEGER NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
    recipient_id  INTEGER,
    status        INTEGER NOT NULL,
    feedback      INTEGER NOT NULL,
    reason        INTEGER,
    domain_id     INTEGER NOT NULL REFERENCES domain(id),
    failure_id    INTEGER REFERENCES failure(id),
    claim_until   INTEGER,
    last_event_at INTEGER NOT NULL,
    address       TEXT    NOT NULL,
    mta_id        INTEGER,
    message_id    TEXT,
    attempts      BLOB,
    events        BLOB
);
-- The unfiltered listing (keyset on id within a delivery).
CREATE INDEX log_by_delivery ON log_row(delivery_id);
-- The status filter and the claim of Pending rows. Sent rows, the bulk of a delivery, are left
-- out: listing them walks log_by_delivery, where they are the dense majority.
CREATE INDEX log_by_status ON log_row(delivery_id, status) WHERE status <> 2;
CREATE INDEX log_by_domain ON log_row(delivery_id, domain_id);
CREATE INDEX log_by_reason ON log_row(delivery_id, reason) WHERE reason IS NOT NULL;
CREATE INDEX log_by_address ON log_row(delivery_id, address);
-- Reports that name a message only by the MTA's id (inMail: asynchronous bounces, complaints,
-- unsubscribes) find their row through this.
CREATE INDEX log_by_mta_id ON log_row(mta_id) WHERE mta_id IS NOT NULL;

-- Counters of a delivery (model::Kpis), changed in the same transaction as the rows they count.
CREATE TABLE kpi (
    delivery_id     INTEGER PRIMARY KEY REFERENCES delivery(id) ON DELETE CASCADE,
    to_deliver      INTEGER NOT NULL DEFAULT 0,
    pending         INTEGER NOT NULL DEFAULT 0,
    taken           INTEGER NOT NULL DEFAULT 0,
    sent            INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    ignored         INTEGER NOT NULL DEFAULT 0,
    hard_bounces    INTEGER NOT NULL DEFAULT 0,
    soft_bounces    INTEGER NOT NULL DEFAULT 0,
    complaints      INTEGER NOT NULL DEFAULT 0,
    unsubscribes    INTEGER NOT NULL DEFAULT 0,
    new_quarantines INTEGER NOT NULL DEFAULT 0
);

-- The breakdowns of model::Kpis: kind 0 failed by reason, 1 ignored by reason, 2 failed by
-- domain, 3 sent by domain; `item` is the reason value or the domain id.
CREATE TABLE kpi_breakdown (
    delivery_id INTEGER NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
    kind        INTEGER NOT NULL,
    item        INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, kind, item)
) WITHOUT ROWID;

-- Throughput per minute (SPEC §3.6): rows handed to the MTA (and their bytes), rows that became
-- Sent and rows that became Failed in that minute, from the same transactions as the rows.
CREATE TABLE kpi_minute (
    delivery_id INTEGER NOT NULL REFERENCES delivery(id) ON DELETE CASCADE,
    minute      INTEGER NOT NULL,
    relayed     INTEGER NOT NULL,
    sent        INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, minute)
) WITHOUT ROWID;

-- Address quality (model::AddressState), lower-cased address as the key.
CREATE TABLE address_state (
    address         TEXT    NOT NULL PRIMARY KEY,
    status          INTEGER NOT NULL,
    error_count     INTEGER NOT NULL,
    last_counted_at INTEGER,
    last_error_id   INTEGER REFERENCES failure(id),
    last_error_at   INTEGER,
    since           INTEGER,
    reason          INTEGER
) WITHOUT ROWID;
CREATE INDEX address_state_by_status ON address_state(status, since);

-- Who released which addresses from quarantine, when and why (SPEC §3.5).
CREATE TABLE quarantine_release (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    why    TEXT    NOT NULL,
    filter TEXT    NOT NULL,
    count  INTEGER NOT NULL
);
