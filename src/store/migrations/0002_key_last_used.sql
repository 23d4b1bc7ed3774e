-- Version 2: when each key last verified (Unix seconds; NULL when never, or not since this
-- version).
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
