-- The last step a finished trial reported its objective at: how far a trial stopped early got.
ALTER TABLE trials ADD COLUMN step BIGINT;
