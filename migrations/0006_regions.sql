-- Regions: the region whose endpoint, project and credentials an instance was ordered with.
-- NULL for reservations made before the gateway knew regions: they are in the default region
-- (`cloud.default_region`, or `cloud.region` of the single-region form).
ALTER TABLE reservations ADD COLUMN region TEXT;
