-- The API's internal CA and its clients. One text for both SQLite and PostgreSQL.

-- The CA: its key (in the HSM, by ID and version) and its self-signed certificate (DER, hex).
CREATE TABLE api_ca (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key_id      TEXT NOT NULL REFERENCES keys (id),
    key_version BIGINT NOT NULL,
    certificate TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- API clients: the role and schools registered with the SHA-256 fingerprint of their
-- certificate (the API authorises by it), and whether they are revoked.
CREATE TABLE api_clients (
    name            TEXT PRIMARY KEY,
    role            TEXT NOT NULL CHECK (role IN ('platform', 'issuer', 'terminal-manager',
                        'auditor')),
    schools         TEXT NOT NULL,
    serial          TEXT NOT NULL UNIQUE,
    fingerprint     TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    status_reason   TEXT,
    not_after       BIGINT NOT NULL,
    enrolled_at     BIGINT NOT NULL,
    status_at       BIGINT NOT NULL
);
