-- ykt KMS store, first schema: the PostgreSQL dialect of ../sqlite/0001_initial.sql.
-- Migrations are append-only: never edit a released file,
-- add the next one. Times are Unix milliseconds (UTC). No clear key is ever stored.

-- Facts fixed at initialisation: bureau code, quorum, HSM kind, LMK check value.
CREATE TABLE kms_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Security officers. Password hashes are argon2id PHC strings.
CREATE TABLE officers (
    name            TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at      BIGINT NOT NULL,
    status_at       BIGINT NOT NULL,
    status_reason   TEXT NOT NULL
);

-- The key tree below the bureau: regions, then schools. Codes are diversification factors.
CREATE TABLE regions (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE schools (
    code        TEXT PRIMARY KEY,
    region_code TEXT NOT NULL REFERENCES regions (code),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Logical keys: one template (usage, algorithm) at one scope, with versions.
CREATE TABLE keys (
    id                  TEXT PRIMARY KEY,
    usage               TEXT NOT NULL,
    algorithm           TEXT NOT NULL,
    scope               TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pre-active', 'active', 'suspended',
                            'deactivated', 'compromised', 'destroyed')),
    state_at            BIGINT NOT NULL,
    state_reason        TEXT NOT NULL,
    current_version     BIGINT NOT NULL,
    min_version         BIGINT NOT NULL,
    custody_threshold   BIGINT,
    custody_count       BIGINT,
    created_at          BIGINT NOT NULL
);

-- Key versions: the HSM-wrapped form (NULL once destroyed), its check value or public key,
-- and the custody block (the key under a one-time custody KEK whose shares the custodians
-- hold).
CREATE TABLE key_versions (
    key_id          TEXT NOT NULL REFERENCES keys (id),
    version         BIGINT NOT NULL,
    provider        TEXT NOT NULL,
    attributes      BYTEA NOT NULL,
    wrapped         BYTEA,
    check_method    TEXT NOT NULL,
    check_value     TEXT NOT NULL,
    custody_block   TEXT,
    state           TEXT NOT NULL CHECK (state IN ('active', 'retired', 'destroyed')),
    created_at      BIGINT NOT NULL,
    state_at        BIGINT NOT NULL,
    PRIMARY KEY (key_id, version)
);

-- Every lifecycle transition of a key, with when, why and by whom, in the order made.
CREATE TABLE key_transitions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES keys (id),
    at          BIGINT NOT NULL,
    version     BIGINT,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    actors      TEXT NOT NULL
);
CREATE INDEX key_transitions_by_key ON key_transitions (key_id, at);

CREATE TABLE aliases (
    alias       TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES keys (id),
    created_at  BIGINT NOT NULL
);

-- Who holds which custody share of which key. The primary key is the PCI rule: no officer
-- holds two shares of the same key.
CREATE TABLE custodians (
    key_id      TEXT NOT NULL REFERENCES keys (id),
    officer     TEXT NOT NULL REFERENCES officers (name),
    share_index BIGINT NOT NULL,
    assigned_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, officer),
    UNIQUE (key_id, share_index)
);

-- The audit chain: hash = SM3 over the previous hash and the record's canonical encoding.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actors      TEXT NOT NULL,
    act         TEXT NOT NULL,
    object      TEXT NOT NULL,
    result      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);

-- The chain's head, updated in the same transaction as each append: its row lock orders
-- concurrent appends, and a truncated tail no longer matches it.
CREATE TABLE audit_head (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    seq     BIGINT NOT NULL,
    hash    BYTEA NOT NULL
);

-- Checkpoints: the head hash at `seq`, signed by the KMS audit key (SM2).
CREATE TABLE audit_checkpoints (
    seq             BIGINT PRIMARY KEY,
    hash            BYTEA NOT NULL,
    key_id          TEXT NOT NULL,
    key_version     BIGINT NOT NULL,
    signature       BYTEA NOT NULL,
    at              BIGINT NOT NULL
);
