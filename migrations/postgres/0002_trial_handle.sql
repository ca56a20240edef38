-- The executor's reference to a running trial (a process group id for local runs), so a
-- resumed run can stop what a crashed one left behind.
ALTER TABLE trials ADD COLUMN handle TEXT;
