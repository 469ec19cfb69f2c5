-- One row the readiness probe rewrites: a database that answers but cannot be written is
-- not ready.
CREATE TABLE write_probe (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL
);
INSERT INTO write_probe (id, at) VALUES (1, 0);
