-- Issuance: serial counters, batches (the issuing journal), user cards, PSAMs and terminals.
-- One text for both SQLite and PostgreSQL: it uses only what both read alike.
-- Serials are 20 decimal digits (10 bytes BCD); the rightmost 16 (8 bytes) are the card's
-- diversification factor, unique across user cards and PSAMs.

-- The next number to allocate per scope (school, region, the bureau) and kind: allocation takes the
-- counter's row lock in the transaction that inserts the allocated rows, so numbers are
-- handed out without gaps or repeats.
CREATE TABLE serial_counters (
    scope   TEXT NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('card', 'psam', 'terminal', 'batch')),
    next    BIGINT NOT NULL,
    PRIMARY KEY (scope, kind)
);

-- A batch: a roster of user cards or a run of PSAMs, personalised with one profile. The
-- profile's digest is fixed at creation: a batch resumes only with the same profile.
CREATE TABLE issue_batches (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('card', 'psam')),
    profile         TEXT NOT NULL,
    profile_digest  TEXT NOT NULL,
    algorithm       TEXT NOT NULL,
    total           BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'done')),
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    closed_at       BIGINT
);

-- Terminals, each with the terminal ID its PSAM carries (EF 0016).
CREATE TABLE terminals (
    terminal_id     TEXT PRIMARY KEY,
    region_code     TEXT NOT NULL REFERENCES regions (code),
    school_code     TEXT NOT NULL REFERENCES schools (code),
    vendor          TEXT NOT NULL,
    registered_at   BIGINT NOT NULL
);

-- User cards and PSAMs, one row per serial from its allocation on: the batch item. Status
-- moves allocated -> personalising (each attempt counted, with the station running it) ->
-- issued. card_master_sent: the KMS made the write of the card master key over the
-- transport key at least once.
CREATE TABLE cards (
    serial          TEXT PRIMARY KEY,
    factor          TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('card', 'psam')),
    school_code     TEXT NOT NULL REFERENCES schools (code),
    batch_id        TEXT NOT NULL REFERENCES issue_batches (id),
    item            BIGINT NOT NULL,
    card_type       TEXT,
    holder_name     TEXT,
    holder_number   TEXT,
    id_number       TEXT,
    terminal_id     TEXT UNIQUE REFERENCES terminals (terminal_id),
    algorithm       TEXT NOT NULL,
    key_versions    TEXT NOT NULL,
    valid_from      TEXT NOT NULL,
    expiry          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('allocated', 'personalising', 'issued')),
    attempts        BIGINT NOT NULL,
    station         TEXT,
    card_master_sent BIGINT NOT NULL DEFAULT 0,
    apdus           BIGINT,
    created_at      BIGINT NOT NULL,
    status_at       BIGINT NOT NULL,
    UNIQUE (batch_id, item),
    UNIQUE (school_code, holder_number, card_type)
);
CREATE INDEX cards_by_batch ON cards (batch_id, item);
