-- Idempotency keys of the API's state-changing calls. One text for both SQLite and PostgreSQL.
-- A client's key is claimed with the SHA-256 digest of its request (method, path, body)
-- before the call runs; the answer (status and JSON body) is kept once it is known, so a
-- retry with the same key and request gets the same answer and the act is not done twice.
-- Rows older than a day are purged.
CREATE TABLE api_idempotency (
    client      TEXT NOT NULL,
    key         TEXT NOT NULL,
    digest      TEXT NOT NULL,
    status      BIGINT,
    body        TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (client, key)
);
CREATE INDEX api_idempotency_created ON api_idempotency (created_at);
