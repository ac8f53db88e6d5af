-- The attachment store's garbage collection.
--
-- 0008 kept every stored file for ever: a file may be shared by content
-- between attachments (of any tenant), so deleting an attachment, or a task
-- with its attachments, left the file.  An uploaded file whose row was
-- never written (a failed call) stayed too.  The store grew without bound,
-- and a file deleted by its owner stayed readable on disk.
--
-- nginx now walks the store in one worker, a bounded slice at a time
-- (taskmgr_attachment_gc), and asks this function which of the files it
-- found, old enough, no attachment row names any more; those it removes
-- (docs/directives.md#taskmgr_attachment_gc has the protocol that keeps a
-- concurrent upload of the same content safe).  It runs across tenants, so
-- it is SECURITY DEFINER (owned by the migration role, like tm_api.purge)
-- and answers only which of the given digests are unused: no tenant data.
--
-- attachments_sha256_idx makes each digest one index probe (the table's
-- other indexes lead with workspace_id).  Cost: one more btree entry per
-- attachment row.

CREATE INDEX attachments_sha256_idx ON tm.attachments (sha256);

-- The digests among p_sha (at most 1000, each 64 lowercase hex digits;
-- anything else is left out) that no attachment row names.
CREATE FUNCTION tm_api.attachment_orphans(p_sha text[])
RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF p_sha IS NULL OR cardinality(p_sha) > 1000 THEN
    RAISE EXCEPTION 'attachment_orphans takes at most 1000 digests'
      USING ERRCODE = '22023';
  END IF;
  RETURN QUERY
    SELECT DISTINCT s.sha
      FROM unnest(p_sha) AS s(sha)
     WHERE s.sha ~ '^[0-9a-f]{64}$'
       AND NOT EXISTS (SELECT 1 FROM tm.attachments a WHERE a.sha256 = s.sha);
END
$$;

REVOKE ALL ON FUNCTION tm_api.attachment_orphans(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tm_api.attachment_orphans(text[]) TO taskmgr_app;
