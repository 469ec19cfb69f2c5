-- Leases: an instance with `expires_at` is deleted then, unless extended. `expiring_since`
-- is set by the lease sweep once the end is within the policy's `lease_warning_hours`.
ALTER TABLE reservations ADD COLUMN expires_at BIGINT;
ALTER TABLE reservations ADD COLUMN expiring_since BIGINT;
CREATE INDEX reservations_expires ON reservations (state, expires_at);
