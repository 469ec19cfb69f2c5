-- The gateway's state. Portable SQL: the same file migrates SQLite and PostgreSQL.
-- Times are unix milliseconds; JSON is stored as text.

-- The quota ledger: one row per create, holding its cost until it is released.
CREATE TABLE reservations (
    id                 TEXT PRIMARY KEY,
    team               TEXT NOT NULL,
    subject            TEXT NOT NULL,
    -- pending: sent or about to be, outcome unknown; committed: the instance exists;
    -- released: it does not, and its cost no longer counts.
    state              TEXT NOT NULL,
    instances          BIGINT NOT NULL,
    nodes              BIGINT NOT NULL,
    storage_gb         BIGINT NOT NULL,
    project_id         TEXT NOT NULL,
    target             TEXT NOT NULL,
    target_instance_id TEXT NOT NULL,
    name               TEXT NOT NULL,
    size               TEXT NOT NULL,
    labels             TEXT NOT NULL,
    instance_id        TEXT,
    job_id             TEXT,
    decision_id        TEXT NOT NULL,
    request_id         TEXT NOT NULL,
    settle_reason      TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX reservations_team_state ON reservations (team, state);
CREATE INDEX reservations_state ON reservations (state);

-- Idempotency-Key records, scoped to the employee.
CREATE TABLE idempotency_keys (
    subject        TEXT NOT NULL,
    idem_key       TEXT NOT NULL,
    request_hash   TEXT NOT NULL,
    -- in_flight or done
    state          TEXT NOT NULL,
    status         BIGINT,
    response       TEXT,
    reservation_id TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (subject, idem_key)
);

-- The decision log: every create, dry-run, denial and delete. Never a password or token.
CREATE TABLE decisions (
    id              TEXT PRIMARY KEY,
    at              BIGINT NOT NULL,
    request_id      TEXT NOT NULL,
    decision_id     TEXT,
    action          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    team            TEXT,
    target          TEXT,
    size            TEXT,
    outcome         TEXT NOT NULL,
    rules           TEXT NOT NULL,
    policy_revision TEXT,
    quota_before    TEXT,
    quota_after     TEXT,
    upstream_status BIGINT,
    error_code      TEXT,
    instance_id     TEXT,
    job_id          TEXT,
    latency_ms      BIGINT NOT NULL
);
CREATE INDEX decisions_at ON decisions (at, id);
CREATE INDEX decisions_team_at ON decisions (team, at);
