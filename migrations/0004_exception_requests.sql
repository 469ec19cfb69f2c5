-- Exception requests: a create that policy denied on rules its team marks exceptable, asked
-- for with a justification, waiting for (or settled by) someone who approves for the team.
CREATE TABLE exception_requests (
    id              TEXT PRIMARY KEY,
    team            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    -- pending; approved (its create running); created or failed (the create's outcome);
    -- rejected, withdrawn or expired (nothing was created).
    state           TEXT NOT NULL,
    -- The create as asked, JSON; it never holds a password.
    body            TEXT NOT NULL,
    -- The failed rules it asks to waive, a JSON array of rule ids.
    waives          TEXT NOT NULL,
    justification   TEXT NOT NULL,
    policy_revision TEXT NOT NULL,
    decision_id     TEXT NOT NULL,
    decided_by      TEXT,
    decided_at      BIGINT,
    comment         TEXT,
    instance_id     TEXT,
    failure_code    TEXT,
    failure         TEXT,
    -- The generated root password, sealed (AES-256-GCM) until its requester reads it once.
    sealed_password TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX exception_requests_state ON exception_requests (state, expires_at);
CREATE INDEX exception_requests_created ON exception_requests (created_at, id);

-- The exception request a decision belongs to (its request, approval, create, ...).
ALTER TABLE decisions ADD COLUMN exception_id TEXT;
