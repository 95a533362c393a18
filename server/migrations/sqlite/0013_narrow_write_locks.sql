-- Nothing to do on SQLite: its writes already go through one connection in commit order. The
-- PostgreSQL migration of the same number adds the function that its write transactions lock
-- the tails of the feeds and of the audit chain with (issue 18); this file keeps the numbering
-- of both dialects in step.
SELECT 1;
