-- Nothing to do on SQLite: its writes go through one connection in commit order and chain their
-- audit records as they append them. The PostgreSQL migration of the same number moves the
-- chaining of audit records off the write path, to a sequencer (issue 18); this file keeps the
-- numbering of both dialects in step.
SELECT 1;
