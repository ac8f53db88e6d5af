-- Attachments in the audit trail.
--
-- 0007 audited tasks, projects, comments and members; an upload or the
-- delete of an attachment left no entry, so "who put this file on the
-- task, who removed it, from where" had no answer.  Now an AFTER ROW
-- trigger on tm.attachments writes entity_type 'attachment' entries, as
-- 0007's triggers do, in the write's own transaction:
--   create  {"name", "content_type", "size", "sha256"} of the new row
--   delete  the same of the row that went
-- with task_id set, so a task's activity lists its attachments' entries.
-- The attachments a task's permanent delete or purge takes with it are not
-- recorded one by one (the task's purge entry covers them, as for
-- comments).  nginx's upload and delete statements pass the request's
-- audit context (tm.audit_ctx: session, request id, client address).
--
-- The entity_type check is replaced, which reads the whole log under an
-- ACCESS EXCLUSIVE lock (the migration is one transaction): every audited
-- write and every read of the log waits, 0.3 s for the bench's 1,000,041
-- entries (scripts/migrate.sh, the whole file).

ALTER TABLE tm.audit_log DROP CONSTRAINT audit_log_entity_type_check,
  ADD CONSTRAINT audit_log_entity_type_check
  CHECK (entity_type IN ('task', 'project', 'comment', 'member', 'attachment'));

CREATE FUNCTION tm.audit_attachment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  a tm.attachments;
  v_action text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    a := NEW;
    v_action := 'create';
  ELSE
    -- taken by its task's permanent delete or purge (the cascade runs after
    -- the task's row is gone): the task's purge entry covers it
    IF NOT EXISTS (SELECT 1 FROM tm.tasks t
                    WHERE t.workspace_id = OLD.workspace_id
                      AND t.id = OLD.task_id) THEN
      RETURN NULL;
    END IF;
    a := OLD;
    v_action := 'delete';
  END IF;

  INSERT INTO tm.audit_log (workspace_id, entity_type, entity_id, task_id,
                            action, actor_id, session_id, changes,
                            request_id, ip)
  VALUES (a.workspace_id, 'attachment', a.id, a.task_id, v_action,
          nullif(current_setting('tm.uid', true), '')::uuid,
          nullif(current_setting('tm.sid', true), '')::uuid,
          jsonb_build_object('name', a.name, 'content_type', a.content_type,
                             'size', a.size, 'sha256', a.sha256),
          nullif(current_setting('tm.rid', true), ''),
          nullif(current_setting('tm.ip', true), '')::inet);
  RETURN NULL;
END
$$;

CREATE TRIGGER attachments_audit
  AFTER INSERT OR DELETE ON tm.attachments
  FOR EACH ROW EXECUTE FUNCTION tm.audit_attachment();

GRANT EXECUTE ON FUNCTION tm.audit_attachment() TO taskmgr_app;
