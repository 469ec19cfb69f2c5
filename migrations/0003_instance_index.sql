-- Get, delete and reconciliation look a reservation up by its StarRocks instance.
CREATE INDEX reservations_instance ON reservations (instance_id);
