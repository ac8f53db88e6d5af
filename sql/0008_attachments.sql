-- taskmgr schema, version 8: task attachments.
--
-- * tm.attachments: the metadata of a file attached to a task.  The bytes
--   live on disk under taskmgr_attachment_path, content-addressed by their
--   SHA-256 (nginx stores them before the row is written, so there is never
--   a row without a file; a file without a row is possible and harmless).
-- * Roles: any member reads; member, admin and owner upload; the uploader
--   (a member or above) or an admin/owner deletes.  At most 100 attachments
--   per task (409 too_many_attachments).
-- * The attachments of a soft-deleted task are hidden with it (404 on the
--   task); a restore shows them again; a task deleted for good takes its
--   rows with it (the files stay: they may be shared by content).
--
-- Single objects answer meta "<id>" (Location); the list answers
-- {"data": [...]} (at most 100 items, so no pages).  nginx adds the signed
-- download_url to every object.

SET client_min_messages = warning;

CREATE TABLE tm.attachments (
  workspace_id uuid NOT NULL REFERENCES tm.workspaces (id) ON DELETE CASCADE,
  id           uuid NOT NULL DEFAULT tm.uuid_v7(),
  task_id      uuid NOT NULL,
  sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size         bigint NOT NULL CHECK (size > 0),
  content_type text NOT NULL CHECK (content_type ~ '^[a-z0-9.+-]+/[a-z0-9.+-]+$'
                                    AND char_length(content_type) <= 127),
  name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255
                                    AND octet_length(name) <= 1020),
  created_by   uuid NOT NULL REFERENCES tm.users (id),
  created_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  PRIMARY KEY (workspace_id, id),
  FOREIGN KEY (workspace_id, task_id) REFERENCES tm.tasks (workspace_id, id)
    ON DELETE CASCADE
);

CREATE INDEX attachments_task_idx ON tm.attachments (workspace_id, task_id, id);

ALTER TABLE tm.attachments ENABLE ROW LEVEL SECURITY;

CREATE POLICY attachments_tenant ON tm.attachments
  USING (workspace_id = tm.cur_ws());

CREATE TYPE tm.attachment_out AS (
  id uuid, workspace_id uuid, task_id uuid, name text, content_type text,
  size bigint, sha256 text, created_by uuid, created_at text);

CREATE FUNCTION tm.attachment_json(a tm.attachments) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(a.id, a.workspace_id, a.task_id, a.name,
                         a.content_type, a.size, a.sha256, a.created_by,
                         tm.ts(a.created_at))::tm.attachment_out)
$$;

-- May the caller attach a file to this task now?  NULL when yes, else the
-- error.  p_lock: take the task's row lock, so that concurrent uploads to
-- one task take turns and the count holds.
CREATE FUNCTION tm.attachment_may_upload(p_uid uuid, p_sid uuid, p_ws uuid,
                                         p_task uuid, p_lock boolean)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  v_err tm_api.result;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  v_err := tm.comment_task_check(p_ws, p_task, p_lock);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  IF e.role = 'viewer' THEN
    RETURN tm_api.err(403, 'forbidden', 'viewers cannot upload attachments');
  END IF;
  IF (SELECT count(*) FROM tm.attachments
       WHERE workspace_id = p_ws AND task_id = p_task) >= 100 THEN
    RETURN tm_api.err(409, 'too_many_attachments',
                      'a task can have at most 100 attachments');
  END IF;
  RETURN NULL;
END
$$;

-- Before nginx reads an upload's body: 200 when it may go on.
CREATE FUNCTION tm_api.attachment_check(p_uid uuid, p_sid uuid, p_ws uuid,
                                        p_task uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_err tm_api.result;
BEGIN
  v_err := tm.attachment_may_upload(p_uid, p_sid, p_ws, p_task, false);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  RETURN (200, NULL, NULL)::tm_api.result;
END
$$;

-- After nginx stored the file: the same checks again, then the row.
-- p_sha256, p_size, p_type and p_name were checked by nginx (and by the
-- table's constraints: 422 otherwise).
CREATE FUNCTION tm_api.attachment_create(p_uid uuid, p_sid uuid, p_ws uuid,
                                         p_task uuid, p_sha256 text,
                                         p_size bigint, p_type text,
                                         p_name text)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  a tm.attachments;
  v_err tm_api.result;
BEGIN
  v_err := tm.attachment_may_upload(p_uid, p_sid, p_ws, p_task, true);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  INSERT INTO tm.attachments (workspace_id, task_id, sha256, size,
                              content_type, name, created_by)
  VALUES (p_ws, p_task, p_sha256, p_size, p_type, p_name, p_uid)
  RETURNING * INTO a;
  RETURN (201, tm.attachment_json(a)::text, a.id::text)::tm_api.result;
END
$$;

-- A live task's attachments, oldest first.
CREATE FUNCTION tm_api.attachment_list(p_uid uuid, p_sid uuid, p_ws uuid,
                                       p_task uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  v_err tm_api.result;
  v_items text;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  v_err := tm.comment_task_check(p_ws, p_task, false);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  -- the cap of 100 per task bounds the list; the LIMIT holds it anyway
  SELECT string_agg(j, ',' ORDER BY id) INTO v_items
    FROM (SELECT a.id, tm.attachment_json(a)::text AS j
            FROM tm.attachments a
           WHERE a.workspace_id = p_ws AND a.task_id = p_task
           ORDER BY a.id LIMIT 100) s;
  RETURN (200, '{"data":[' || coalesce(v_items, '') || ']}',
          NULL)::tm_api.result;
END
$$;

-- One attachment of a live task.
CREATE FUNCTION tm_api.attachment_get(p_uid uuid, p_sid uuid, p_ws uuid,
                                      p_id uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  a tm.attachments;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  SELECT at.* INTO a FROM tm.attachments at
    JOIN tm.tasks t ON t.workspace_id = at.workspace_id AND t.id = at.task_id
   WHERE at.workspace_id = p_ws AND at.id = p_id AND t.deleted_at IS NULL;
  IF a.id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'attachment not found');
  END IF;
  RETURN (200, tm.attachment_json(a)::text, a.id::text)::tm_api.result;
END
$$;

-- The uploader (member or above) or an admin/owner removes the row; the
-- file stays (it may be shared by content; links already handed out work
-- until they expire).
CREATE FUNCTION tm_api.attachment_delete(p_uid uuid, p_sid uuid, p_ws uuid,
                                         p_id uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  a tm.attachments;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  SELECT at.* INTO a FROM tm.attachments at
    JOIN tm.tasks t ON t.workspace_id = at.workspace_id AND t.id = at.task_id
   WHERE at.workspace_id = p_ws AND at.id = p_id AND t.deleted_at IS NULL;
  IF a.id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'attachment not found');
  END IF;
  -- no row lock (the app role may not UPDATE attachments): a concurrent
  -- delete of the same row makes this one a no-op, which is the same end
  IF NOT (e.role IN ('owner', 'admin')
          OR (a.created_by = p_uid AND e.role = 'member')) THEN
    RETURN tm_api.err(403, 'forbidden',
                      'only the uploader or an admin can delete an attachment');
  END IF;
  DELETE FROM tm.attachments WHERE workspace_id = p_ws AND id = p_id;
  RETURN (204, NULL, NULL)::tm_api.result;
END
$$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tm, tm_api TO taskmgr_app;
GRANT SELECT, INSERT, DELETE ON tm.attachments TO taskmgr_app;
