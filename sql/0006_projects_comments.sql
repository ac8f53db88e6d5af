-- taskmgr schema, version 6: projects and task comments.
--
-- * Projects (tm.projects, since version 1) get a version for ETag and
--   If-Match, and CRUD functions.  Roles (API.md: "admin manages
--   projects"): any member reads; admin and owner create, change and
--   delete.  At most 1000
--   projects per workspace.  A project that live tasks still use cannot be
--   deleted (409); soft-deleted tasks that used it lose their project_id
--   when it goes.
-- * Comments on tasks (tm.comments): any member reads; member, admin and
--   owner write; the author edits and deletes their own, admin and owner
--   delete any.  1..10000 characters, at most 10000 per task.  The comments
--   of a soft-deleted task are hidden with it (404 on the task); a task
--   deleted for good takes its comments with it.
--
-- Single objects answer meta "<id> <version>" (ETag, Location); lists
-- answer {"data": [...], "next_cursor": ...} with meta the next cursor.

SET client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- tables
-- ---------------------------------------------------------------------------

ALTER TABLE tm.projects
  ADD COLUMN version int NOT NULL DEFAULT 1 CHECK (version >= 1);

CREATE TABLE tm.comments (
  workspace_id uuid NOT NULL REFERENCES tm.workspaces (id) ON DELETE CASCADE,
  id           uuid NOT NULL DEFAULT tm.uuid_v7(),
  task_id      uuid NOT NULL,
  author_id    uuid NOT NULL REFERENCES tm.users (id),
  body         text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 10000),
  created_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  updated_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  version      int NOT NULL DEFAULT 1 CHECK (version >= 1),
  PRIMARY KEY (workspace_id, id),
  FOREIGN KEY (workspace_id, task_id) REFERENCES tm.tasks (workspace_id, id)
    ON DELETE CASCADE
);

-- the list: one task's comments, keyset on id (UUIDv7: creation order)
CREATE INDEX comments_task_idx ON tm.comments (workspace_id, task_id, id);

ALTER TABLE tm.comments ENABLE ROW LEVEL SECURITY;

CREATE POLICY comments_tenant ON tm.comments
  USING (workspace_id = tm.cur_ws());

-- ---------------------------------------------------------------------------
-- JSON shapes
-- ---------------------------------------------------------------------------

CREATE TYPE tm.project_out AS (
  id uuid, workspace_id uuid, name text, description text, created_by uuid,
  created_at text, updated_at text, version int);

CREATE FUNCTION tm.project_json(p tm.projects) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(p.id, p.workspace_id, p.name, p.description,
                         p.created_by, tm.ts(p.created_at),
                         tm.ts(p.updated_at), p.version)::tm.project_out)
$$;

CREATE TYPE tm.comment_out AS (
  id uuid, workspace_id uuid, task_id uuid, author_id uuid, body text,
  created_at text, updated_at text, version int);

CREATE FUNCTION tm.comment_json(c tm.comments) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(c.id, c.workspace_id, c.task_id, c.author_id,
                         c.body, tm.ts(c.created_at), tm.ts(c.updated_at),
                         c.version)::tm.comment_out)
$$;

-- one object: meta "<id> <version>"
CREATE FUNCTION tm.project_res(p_status int, p tm.projects)
RETURNS tm_api.result
LANGUAGE sql STABLE AS $$
  SELECT (p_status, tm.project_json(p)::text,
          p.id || ' ' || p.version)::tm_api.result
$$;

CREATE FUNCTION tm.comment_res(p_status int, c tm.comments)
RETURNS tm_api.result
LANGUAGE sql STABLE AS $$
  SELECT (p_status, tm.comment_json(c)::text,
          c.id || ' ' || c.version)::tm_api.result
$$;

-- Enters the workspace: NULL and *err set when the caller may not go on
-- (401 dead session, 404 not a member), else the role.
CREATE FUNCTION tm.enter_checked(p_uid uuid, p_sid uuid, p_ws uuid,
                                 OUT role text, OUT err tm_api.result)
LANGUAGE plpgsql AS $$
BEGIN
  role := tm.enter(p_uid, p_sid, p_ws);
  IF role IS NULL THEN
    err := tm_api.err(401, 'unauthorized', 'session has ended');
  ELSIF role = '' THEN
    role := NULL;
    err := tm_api.err(404, 'not_found', 'workspace not found');
  END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- projects
-- ---------------------------------------------------------------------------

-- The page body: {"data": [...], "next_cursor": "<last id>" | null}.
CREATE FUNCTION tm.page(p_items text[], p_next uuid) RETURNS tm_api.result
LANGUAGE sql IMMUTABLE AS $$
  SELECT (200,
          '{"data":[' || array_to_string(p_items, ',') || '],"next_cursor":'
            || coalesce('"' || p_next || '"', 'null') || '}',
          p_next::text)::tm_api.result
$$;

-- Oldest first, keyset on id (UUIDv7); p_limit 1..200 (checked by nginx,
-- clamped here too).
CREATE FUNCTION tm_api.project_list(p_uid uuid, p_sid uuid, p_ws uuid,
                                    p_limit int, p_after uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  p tm.projects;
  v_items text[] := '{}';
  v_last uuid;
  v_limit int := least(greatest(coalesce(p_limit, 50), 1), 200);
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  FOR p IN SELECT * FROM tm.projects
            WHERE workspace_id = p_ws
              AND id > coalesce(p_after, '00000000-0000-0000-0000-000000000000')
            ORDER BY id LIMIT v_limit + 1 LOOP
    IF cardinality(v_items) = v_limit THEN
      RETURN tm.page(v_items, v_last);
    END IF;
    v_items := v_items || tm.project_json(p)::text;
    v_last := p.id;
  END LOOP;
  RETURN tm.page(v_items, NULL);
END
$$;

CREATE FUNCTION tm_api.project_get(p_uid uuid, p_sid uuid, p_ws uuid,
                                   p_id uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  p tm.projects;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  SELECT * INTO p FROM tm.projects WHERE workspace_id = p_ws AND id = p_id;
  IF p.id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'project not found');
  END IF;
  RETURN tm.project_res(200, p);
END
$$;

-- p_body: {name, description?} validated by nginx.
CREATE FUNCTION tm_api.project_create(p_uid uuid, p_sid uuid, p_ws uuid,
                                      p_body jsonb)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  p tm.projects;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  IF e.role NOT IN ('owner', 'admin') THEN
    RETURN tm_api.err(403, 'forbidden', 'only an admin or owner can manage projects');
  END IF;
  -- creates in one workspace take turns, so the count below holds
  PERFORM 1 FROM tm.workspaces WHERE id = p_ws FOR UPDATE;
  IF (SELECT count(*) FROM tm.projects WHERE workspace_id = p_ws) >= 1000 THEN
    RETURN tm_api.err(403, 'quota_exceeded',
                      'a workspace can have at most 1000 projects');
  END IF;
  INSERT INTO tm.projects (workspace_id, name, description, created_by)
  VALUES (p_ws, p_body->>'name', coalesce(p_body->>'description', ''), p_uid)
  RETURNING * INTO p;
  RETURN tm.project_res(201, p);
END
$$;

-- JSON merge patch; p_if_match: the version the client saw, or NULL.
CREATE FUNCTION tm_api.project_update(p_uid uuid, p_sid uuid, p_ws uuid,
                                      p_id uuid, p_patch jsonb,
                                      p_if_match int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  p tm.projects;
  n tm.projects;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  SELECT * INTO p FROM tm.projects WHERE workspace_id = p_ws AND id = p_id
    FOR UPDATE;
  IF p.id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'project not found');
  END IF;
  IF e.role NOT IN ('owner', 'admin') THEN
    RETURN tm_api.err(403, 'forbidden', 'only an admin or owner can manage projects');
  END IF;
  IF p_if_match IS NOT NULL AND p_if_match <> p.version THEN
    RETURN tm_api.err(412, 'precondition_failed',
                      'the project has changed since that version');
  END IF;
  n := p;
  IF p_patch ? 'name' THEN n.name := p_patch->>'name'; END IF;
  IF p_patch ? 'description' THEN
    n.description := coalesce(p_patch->>'description', '');
  END IF;
  IF (n.name, n.description) IS NOT DISTINCT FROM (p.name, p.description) THEN
    RETURN tm.project_res(200, p);
  END IF;
  UPDATE tm.projects SET name = n.name, description = n.description,
                         updated_at = tm.now_ms(), version = p.version + 1
   WHERE workspace_id = p_ws AND id = p_id
  RETURNING * INTO n;
  RETURN tm.project_res(200, n);
END
$$;

-- Refused (409) while live tasks use the project; soft-deleted tasks that
-- used it are detached (a restore brings them back without a project).
CREATE FUNCTION tm_api.project_delete(p_uid uuid, p_sid uuid, p_ws uuid,
                                      p_id uuid, p_if_match int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  p tm.projects;
  v_live bigint;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  SELECT * INTO p FROM tm.projects WHERE workspace_id = p_ws AND id = p_id
    FOR UPDATE;
  IF p.id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'project not found');
  END IF;
  IF e.role NOT IN ('owner', 'admin') THEN
    RETURN tm_api.err(403, 'forbidden',
                      'only an admin or owner can delete projects');
  END IF;
  IF p_if_match IS NOT NULL AND p_if_match <> p.version THEN
    RETURN tm_api.err(412, 'precondition_failed',
                      'the project has changed since that version');
  END IF;
  SELECT count(*) INTO v_live FROM tm.tasks
   WHERE workspace_id = p_ws AND project_id = p_id AND deleted_at IS NULL;
  IF v_live > 0 THEN
    RETURN tm_api.err(409, 'conflict',
                      v_live || ' live task(s) still belong to this project: '
                      || 'move or delete them first');
  END IF;
  UPDATE tm.tasks SET project_id = NULL, updated_at = tm.now_ms(),
                      version = version + 1
   WHERE workspace_id = p_ws AND project_id = p_id;
  DELETE FROM tm.projects WHERE workspace_id = p_ws AND id = p_id;
  RETURN (204, NULL, NULL)::tm_api.result;
END
$$;

-- ---------------------------------------------------------------------------
-- comments
-- ---------------------------------------------------------------------------

-- The task must be live; NULL when it is, else the 404.
CREATE FUNCTION tm.comment_task_check(p_ws uuid, p_task uuid, p_lock boolean)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
BEGIN
  IF p_lock THEN
    PERFORM 1 FROM tm.tasks
     WHERE workspace_id = p_ws AND id = p_task AND deleted_at IS NULL
       FOR NO KEY UPDATE;
  ELSE
    PERFORM 1 FROM tm.tasks
     WHERE workspace_id = p_ws AND id = p_task AND deleted_at IS NULL;
  END IF;
  IF NOT FOUND THEN
    RETURN tm_api.err(404, 'not_found', 'task not found');
  END IF;
  RETURN NULL;
END
$$;

-- Oldest first, keyset on id (UUIDv7).
CREATE FUNCTION tm_api.comment_list(p_uid uuid, p_sid uuid, p_ws uuid,
                                    p_task uuid, p_limit int, p_after uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  c tm.comments;
  v_err tm_api.result;
  v_items text[] := '{}';
  v_last uuid;
  v_limit int := least(greatest(coalesce(p_limit, 50), 1), 200);
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  v_err := tm.comment_task_check(p_ws, p_task, false);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  FOR c IN SELECT * FROM tm.comments
            WHERE workspace_id = p_ws AND task_id = p_task
              AND id > coalesce(p_after, '00000000-0000-0000-0000-000000000000')
            ORDER BY id LIMIT v_limit + 1 LOOP
    IF cardinality(v_items) = v_limit THEN
      RETURN tm.page(v_items, v_last);
    END IF;
    v_items := v_items || tm.comment_json(c)::text;
    v_last := c.id;
  END LOOP;
  RETURN tm.page(v_items, NULL);
END
$$;

-- p_body: {body} validated by nginx.
CREATE FUNCTION tm_api.comment_create(p_uid uuid, p_sid uuid, p_ws uuid,
                                      p_task uuid, p_body jsonb)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  c tm.comments;
  v_err tm_api.result;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  -- the task's row lock also makes creates on one task take turns, so the
  -- count below holds
  v_err := tm.comment_task_check(p_ws, p_task, true);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  IF e.role = 'viewer' THEN
    RETURN tm_api.err(403, 'forbidden', 'viewers cannot comment');
  END IF;
  IF (SELECT count(*) FROM tm.comments
       WHERE workspace_id = p_ws AND task_id = p_task) >= 10000 THEN
    RETURN tm_api.err(403, 'quota_exceeded',
                      'a task can have at most 10000 comments');
  END IF;
  INSERT INTO tm.comments (workspace_id, task_id, author_id, body)
  VALUES (p_ws, p_task, p_uid, p_body->>'body')
  RETURNING * INTO c;
  RETURN tm.comment_res(201, c);
END
$$;

CREATE FUNCTION tm_api.comment_get(p_uid uuid, p_sid uuid, p_ws uuid,
                                   p_task uuid, p_id uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  c tm.comments;
  v_err tm_api.result;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  v_err := tm.comment_task_check(p_ws, p_task, false);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  SELECT * INTO c FROM tm.comments
   WHERE workspace_id = p_ws AND task_id = p_task AND id = p_id;
  IF c.id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'comment not found');
  END IF;
  RETURN tm.comment_res(200, c);
END
$$;

-- The author (member or above) edits their own comment.
CREATE FUNCTION tm_api.comment_update(p_uid uuid, p_sid uuid, p_ws uuid,
                                      p_task uuid, p_id uuid, p_patch jsonb,
                                      p_if_match int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  c tm.comments;
  v_err tm_api.result;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  v_err := tm.comment_task_check(p_ws, p_task, false);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  SELECT * INTO c FROM tm.comments
   WHERE workspace_id = p_ws AND task_id = p_task AND id = p_id FOR UPDATE;
  IF c.id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'comment not found');
  END IF;
  IF c.author_id <> p_uid OR e.role = 'viewer' THEN
    RETURN tm_api.err(403, 'forbidden',
                      'only the author can edit a comment');
  END IF;
  IF p_if_match IS NOT NULL AND p_if_match <> c.version THEN
    RETURN tm_api.err(412, 'precondition_failed',
                      'the comment has changed since that version');
  END IF;
  IF NOT p_patch ? 'body' OR p_patch->>'body' = c.body THEN
    RETURN tm.comment_res(200, c);
  END IF;
  UPDATE tm.comments SET body = p_patch->>'body', updated_at = tm.now_ms(),
                         version = c.version + 1
   WHERE workspace_id = p_ws AND id = p_id
  RETURNING * INTO c;
  RETURN tm.comment_res(200, c);
END
$$;

-- The author (member or above) deletes their own; admin and owner any.
CREATE FUNCTION tm_api.comment_delete(p_uid uuid, p_sid uuid, p_ws uuid,
                                      p_task uuid, p_id uuid, p_if_match int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  c tm.comments;
  v_err tm_api.result;
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  v_err := tm.comment_task_check(p_ws, p_task, false);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  SELECT * INTO c FROM tm.comments
   WHERE workspace_id = p_ws AND task_id = p_task AND id = p_id FOR UPDATE;
  IF c.id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'comment not found');
  END IF;
  IF NOT (e.role IN ('owner', 'admin')
          OR (c.author_id = p_uid AND e.role = 'member')) THEN
    RETURN tm_api.err(403, 'forbidden',
                      'only the author or an admin can delete a comment');
  END IF;
  IF p_if_match IS NOT NULL AND p_if_match <> c.version THEN
    RETURN tm_api.err(412, 'precondition_failed',
                      'the comment has changed since that version');
  END IF;
  DELETE FROM tm.comments WHERE workspace_id = p_ws AND id = p_id;
  RETURN (204, NULL, NULL)::tm_api.result;
END
$$;

-- ---------------------------------------------------------------------------
-- privileges
-- ---------------------------------------------------------------------------

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tm, tm_api TO taskmgr_app;
GRANT DELETE ON tm.projects TO taskmgr_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tm.comments TO taskmgr_app;
