-- The exception request whose approval made a reservation: a request left `approved` by a
-- gateway that stopped mid-create is settled from its reservation once that is settled.
ALTER TABLE reservations ADD COLUMN exception_id TEXT;
CREATE INDEX reservations_exception ON reservations (exception_id);
