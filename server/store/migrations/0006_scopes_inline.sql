-- Each record's scopes (besides "all") are kept in its row as well, sorted
-- and separated by spaces, beside record_scopes, which serves scoped pulls
-- by (scope, seq). The apply loop reads them with the records it loads,
-- and the row it writes carries them, so record_scopes no longer needs an
-- index by record: one B-tree less to write per new record (bench: server
-- CPU per pushed write -2 us, push +7%).
ALTER TABLE records ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
UPDATE records SET scopes = coalesce((SELECT group_concat(scope, ' ' ORDER BY scope) FROM record_scopes s
  WHERE s.rid = records.rid), '');
DROP INDEX record_scopes_by_rid;
