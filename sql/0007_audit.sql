-- taskmgr schema, version 7: the audit trail.
--
-- * tm.audit_log: one row per changed task, project, comment or workspace
--   member, written by AFTER ROW triggers on those tables, so an entry
--   commits or rolls back with the write that caused it.  A no-op write
--   (a PATCH that changes nothing) writes no row, and neither does a
--   change of bookkeeping columns only (version, updated_at, search).
-- * Who, from where: the triggers read the transaction-local settings
--   tm.uid (the caller: set by tm.enter and the tm_api functions), and
--   tm.sid, tm.rid, tm.ip, which tm.audit_ctx() sets.  nginx's write
--   statements pass tm.audit_ctx(uid, sid, request id, client address) as
--   the user-id argument of the tm_api function, so the settings are in
--   place before the function body runs: argument evaluation comes first,
--   not by accident of a plan.  A write without that context (the
--   background purge, a psql session) records NULL for what it lacks.
-- * changes:
--     create                  the new values {"field": value, ...}
--     update, delete, restore {"field": {"from": old, "to": new}, ...}
--                             for the changed fields only (a task's soft
--                             delete and restore are changes of deleted_at)
--     purge, and the delete   the old values {"field": value, ...}: what
--     of a project, comment   is gone stays on record
--     or member
--   Times are RFC 3339 UTC with milliseconds, as in the API.
-- * task_id: the task of a task or comment entry, so a task's activity
--   shows its comments' entries too.  The comments that a task's purge
--   takes with it are not recorded one by one: the purge entry holds the
--   task.
-- * Audit rows are never changed: taskmgr_app may only SELECT and INSERT,
--   and a trigger refuses UPDATE, DELETE and TRUNCATE for everyone.  There
--   is no API path that deletes a workspace; audit rows do not reference
--   their workspace (no foreign key), so they outlive the entities they
--   describe.  Retention or the erasure of a tenant is an operator's job:
--   as the table owner, ALTER TABLE tm.audit_log DISABLE TRIGGER
--   audit_log_immutable in the same transaction as the DELETE.
-- * Reads: tm_api.audit_list (owner and admin: the workspace's log,
--   optional entity_type and actor_id filters) and tm_api.task_activity
--   (any member who can see the task, soft-deleted ones included), newest
--   first, keyset on id (a bigint identity: strictly increasing, so
--   "newest first" holds within one millisecond, too).

SET client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- table
-- ---------------------------------------------------------------------------

CREATE TABLE tm.audit_log (
  workspace_id uuid NOT NULL,
  id           bigint GENERATED ALWAYS AS IDENTITY,
  entity_type  text NOT NULL
               CHECK (entity_type IN ('task', 'project', 'comment', 'member')),
  entity_id    uuid NOT NULL,
  task_id      uuid,
  action       text NOT NULL
               CHECK (action IN ('create', 'update', 'delete', 'restore',
                                 'purge')),
  actor_id     uuid,
  -- the session of the caller, or the API key's id for API-key callers
  session_id   uuid,
  changes      jsonb NOT NULL,
  request_id   text CHECK (char_length(request_id) BETWEEN 1 AND 128),
  ip           inet,
  created_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  PRIMARY KEY (workspace_id, id)
);

-- the primary key serves the workspace's log (newest first: a backward
-- scan); this one a task's activity
CREATE INDEX audit_log_task_idx ON tm.audit_log (workspace_id, task_id, id)
  WHERE task_id IS NOT NULL;

ALTER TABLE tm.audit_log ENABLE ROW LEVEL SECURITY;

CREATE POLICY audit_log_tenant ON tm.audit_log
  USING (workspace_id = tm.cur_ws());

CREATE FUNCTION tm.audit_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit log rows cannot be changed or deleted'
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_immutable
  BEFORE UPDATE OR DELETE ON tm.audit_log
  FOR EACH ROW EXECUTE FUNCTION tm.audit_immutable();

CREATE TRIGGER audit_log_no_truncate
  BEFORE TRUNCATE ON tm.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION tm.audit_immutable();

-- ---------------------------------------------------------------------------
-- context
-- ---------------------------------------------------------------------------

-- Sets the request's audit context for the rest of the transaction and
-- answers p_uid, so that it can stand in for the user-id argument of the
-- tm_api function it precedes.  p_ip must be an IP address or NULL (nginx
-- sends the client's address, NULL for a unix socket).
CREATE FUNCTION tm.audit_ctx(p_uid uuid, p_sid uuid, p_rid text, p_ip text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM set_config('tm.sid', coalesce(p_sid::text, ''), true),
          set_config('tm.rid', coalesce(left(p_rid, 128), ''), true),
          set_config('tm.ip', coalesce(p_ip::inet::text, ''), true);
  RETURN p_uid;
END
$$;

-- {"from": a, "to": b}
CREATE FUNCTION tm.audit_ft(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT jsonb_build_object('from', a, 'to', b)
$$;

-- ---------------------------------------------------------------------------
-- triggers: no dynamic SQL, the audited columns written out per table.  Each
-- ends in its own INSERT with the context of the transaction (tm.uid,
-- tm.sid, tm.rid, tm.ip) rather than calling a shared helper, which would
-- add a nested PL/pgSQL call per written row.
-- ---------------------------------------------------------------------------

CREATE FUNCTION tm.audit_task_values(t tm.tasks) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'title', t.title, 'description', t.description, 'status', t.status,
    'priority', t.priority, 'due_at', tm.ts(t.due_at),
    'assignee_id', t.assignee_id, 'project_id', t.project_id,
    'parent_id', t.parent_id, 'labels', to_jsonb(t.labels),
    'completed_at', tm.ts(t.completed_at), 'deleted_at', tm.ts(t.deleted_at))
$$;

CREATE FUNCTION tm.audit_task() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  c jsonb := '{}';
  v_ws uuid;
  v_entity uuid;
  v_task uuid;
  v_action text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    v_ws := NEW.workspace_id; v_entity := NEW.id; v_action := 'create';
    c := tm.audit_task_values(NEW);
  ELSIF TG_OP = 'DELETE' THEN
    v_ws := OLD.workspace_id; v_entity := OLD.id; v_action := 'purge';
    c := tm.audit_task_values(OLD);
  ELSE
    IF NEW.title IS DISTINCT FROM OLD.title THEN
      c := c || jsonb_build_object('title',
                  tm.audit_ft(to_jsonb(OLD.title), to_jsonb(NEW.title)));
    END IF;
    IF NEW.description IS DISTINCT FROM OLD.description THEN
      c := c || jsonb_build_object('description',
                  tm.audit_ft(to_jsonb(OLD.description),
                              to_jsonb(NEW.description)));
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status THEN
      c := c || jsonb_build_object('status',
                  tm.audit_ft(to_jsonb(OLD.status), to_jsonb(NEW.status)));
    END IF;
    IF NEW.priority IS DISTINCT FROM OLD.priority THEN
      c := c || jsonb_build_object('priority',
                  tm.audit_ft(to_jsonb(OLD.priority), to_jsonb(NEW.priority)));
    END IF;
    IF NEW.due_at IS DISTINCT FROM OLD.due_at THEN
      c := c || jsonb_build_object('due_at',
                  tm.audit_ft(to_jsonb(tm.ts(OLD.due_at)),
                              to_jsonb(tm.ts(NEW.due_at))));
    END IF;
    IF NEW.assignee_id IS DISTINCT FROM OLD.assignee_id THEN
      c := c || jsonb_build_object('assignee_id',
                  tm.audit_ft(to_jsonb(OLD.assignee_id),
                              to_jsonb(NEW.assignee_id)));
    END IF;
    IF NEW.project_id IS DISTINCT FROM OLD.project_id THEN
      c := c || jsonb_build_object('project_id',
                  tm.audit_ft(to_jsonb(OLD.project_id),
                              to_jsonb(NEW.project_id)));
    END IF;
    IF NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
      c := c || jsonb_build_object('parent_id',
                  tm.audit_ft(to_jsonb(OLD.parent_id), to_jsonb(NEW.parent_id)));
    END IF;
    IF NEW.labels IS DISTINCT FROM OLD.labels THEN
      c := c || jsonb_build_object('labels',
                  tm.audit_ft(to_jsonb(OLD.labels), to_jsonb(NEW.labels)));
    END IF;
    IF NEW.completed_at IS DISTINCT FROM OLD.completed_at THEN
      c := c || jsonb_build_object('completed_at',
                  tm.audit_ft(to_jsonb(tm.ts(OLD.completed_at)),
                              to_jsonb(tm.ts(NEW.completed_at))));
    END IF;
    IF NEW.deleted_at IS DISTINCT FROM OLD.deleted_at THEN
      c := c || jsonb_build_object('deleted_at',
                  tm.audit_ft(to_jsonb(tm.ts(OLD.deleted_at)),
                              to_jsonb(tm.ts(NEW.deleted_at))));
    END IF;
    IF c = '{}' THEN
      RETURN NULL;
    END IF;
    v_ws := NEW.workspace_id; v_entity := NEW.id;
    v_action := CASE
                  WHEN OLD.deleted_at IS NULL
                       AND NEW.deleted_at IS NOT NULL THEN 'delete'
                  WHEN OLD.deleted_at IS NOT NULL
                       AND NEW.deleted_at IS NULL THEN 'restore'
                  ELSE 'update'
                END;
  END IF;
  v_task := v_entity;

  INSERT INTO tm.audit_log (workspace_id, entity_type, entity_id, task_id,
                            action, actor_id, session_id, changes,
                            request_id, ip)
  VALUES (v_ws, 'task', v_entity, v_task, v_action,
          nullif(current_setting('tm.uid', true), '')::uuid,
          nullif(current_setting('tm.sid', true), '')::uuid,
          c,
          nullif(current_setting('tm.rid', true), ''),
          nullif(current_setting('tm.ip', true), '')::inet);
  RETURN NULL;
END
$$;

CREATE FUNCTION tm.audit_project() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  c jsonb := '{}';
  v_ws uuid;
  v_entity uuid;
  v_task uuid;
  v_action text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    v_ws := NEW.workspace_id; v_entity := NEW.id; v_action := 'create';
    c := jsonb_build_object('name', NEW.name, 'description', NEW.description,
                            'archived_at', tm.ts(NEW.archived_at));
  ELSIF TG_OP = 'DELETE' THEN
    v_ws := OLD.workspace_id; v_entity := OLD.id; v_action := 'delete';
    c := jsonb_build_object('name', OLD.name, 'description', OLD.description,
                            'archived_at', tm.ts(OLD.archived_at));
  ELSE
    IF NEW.name IS DISTINCT FROM OLD.name THEN
      c := c || jsonb_build_object('name',
                  tm.audit_ft(to_jsonb(OLD.name), to_jsonb(NEW.name)));
    END IF;
    IF NEW.description IS DISTINCT FROM OLD.description THEN
      c := c || jsonb_build_object('description',
                  tm.audit_ft(to_jsonb(OLD.description),
                              to_jsonb(NEW.description)));
    END IF;
    IF NEW.archived_at IS DISTINCT FROM OLD.archived_at THEN
      c := c || jsonb_build_object('archived_at',
                  tm.audit_ft(to_jsonb(tm.ts(OLD.archived_at)),
                              to_jsonb(tm.ts(NEW.archived_at))));
    END IF;
    IF c = '{}' THEN
      RETURN NULL;
    END IF;
    v_ws := NEW.workspace_id; v_entity := NEW.id; v_action := 'update';
  END IF;

  INSERT INTO tm.audit_log (workspace_id, entity_type, entity_id, task_id,
                            action, actor_id, session_id, changes,
                            request_id, ip)
  VALUES (v_ws, 'project', v_entity, v_task, v_action,
          nullif(current_setting('tm.uid', true), '')::uuid,
          nullif(current_setting('tm.sid', true), '')::uuid,
          c,
          nullif(current_setting('tm.rid', true), ''),
          nullif(current_setting('tm.ip', true), '')::inet);
  RETURN NULL;
END
$$;

CREATE FUNCTION tm.audit_comment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  c jsonb;
  v_ws uuid;
  v_entity uuid;
  v_task uuid;
  v_action text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    v_ws := NEW.workspace_id; v_entity := NEW.id; v_task := NEW.task_id;
    v_action := 'create';
    c := jsonb_build_object('body', NEW.body);
  ELSIF TG_OP = 'DELETE' THEN
    -- taken by its task's purge (the cascade runs after the task's row is
    -- gone): the task's purge entry covers it
    IF NOT EXISTS (SELECT 1 FROM tm.tasks t
                    WHERE t.workspace_id = OLD.workspace_id
                      AND t.id = OLD.task_id) THEN
      RETURN NULL;
    END IF;
    v_ws := OLD.workspace_id; v_entity := OLD.id; v_task := OLD.task_id;
    v_action := 'delete';
    c := jsonb_build_object('body', OLD.body);
  ELSIF NEW.body IS DISTINCT FROM OLD.body THEN
    v_ws := NEW.workspace_id; v_entity := NEW.id; v_task := NEW.task_id;
    v_action := 'update';
    c := jsonb_build_object('body',
           tm.audit_ft(to_jsonb(OLD.body), to_jsonb(NEW.body)));
  ELSE
    RETURN NULL;
  END IF;

  INSERT INTO tm.audit_log (workspace_id, entity_type, entity_id, task_id,
                            action, actor_id, session_id, changes,
                            request_id, ip)
  VALUES (v_ws, 'comment', v_entity, v_task, v_action,
          nullif(current_setting('tm.uid', true), '')::uuid,
          nullif(current_setting('tm.sid', true), '')::uuid,
          c,
          nullif(current_setting('tm.rid', true), ''),
          nullif(current_setting('tm.ip', true), '')::inet);
  RETURN NULL;
END
$$;

CREATE FUNCTION tm.audit_member() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  c jsonb;
  v_ws uuid;
  v_entity uuid;
  v_task uuid;
  v_action text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    v_ws := NEW.workspace_id; v_entity := NEW.user_id; v_action := 'create';
    c := jsonb_build_object('role', NEW.role);
  ELSIF TG_OP = 'DELETE' THEN
    v_ws := OLD.workspace_id; v_entity := OLD.user_id; v_action := 'delete';
    c := jsonb_build_object('role', OLD.role);
  ELSIF NEW.role IS DISTINCT FROM OLD.role THEN
    v_ws := NEW.workspace_id; v_entity := NEW.user_id; v_action := 'update';
    c := jsonb_build_object('role',
           tm.audit_ft(to_jsonb(OLD.role), to_jsonb(NEW.role)));
  ELSE
    RETURN NULL;
  END IF;

  INSERT INTO tm.audit_log (workspace_id, entity_type, entity_id, task_id,
                            action, actor_id, session_id, changes,
                            request_id, ip)
  VALUES (v_ws, 'member', v_entity, v_task, v_action,
          nullif(current_setting('tm.uid', true), '')::uuid,
          nullif(current_setting('tm.sid', true), '')::uuid,
          c,
          nullif(current_setting('tm.rid', true), ''),
          nullif(current_setting('tm.ip', true), '')::inet);
  RETURN NULL;
END
$$;

CREATE TRIGGER tasks_audit
  AFTER INSERT OR UPDATE OR DELETE ON tm.tasks
  FOR EACH ROW EXECUTE FUNCTION tm.audit_task();

CREATE TRIGGER projects_audit
  AFTER INSERT OR UPDATE OR DELETE ON tm.projects
  FOR EACH ROW EXECUTE FUNCTION tm.audit_project();

CREATE TRIGGER comments_audit
  AFTER INSERT OR UPDATE OR DELETE ON tm.comments
  FOR EACH ROW EXECUTE FUNCTION tm.audit_comment();

CREATE TRIGGER workspace_members_audit
  AFTER INSERT OR UPDATE OR DELETE ON tm.workspace_members
  FOR EACH ROW EXECUTE FUNCTION tm.audit_member();

-- ---------------------------------------------------------------------------
-- reads
-- ---------------------------------------------------------------------------

CREATE TYPE tm.audit_out AS (
  id text, workspace_id uuid, entity_type text, entity_id uuid,
  task_id uuid, action text, actor_id uuid, changes jsonb,
  request_id text, ip text, created_at text);

CREATE FUNCTION tm.audit_json(a tm.audit_log) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(a.id::text, a.workspace_id, a.entity_type,
                         a.entity_id, a.task_id, a.action, a.actor_id,
                         a.changes, a.request_id, host(a.ip),
                         tm.ts(a.created_at))::tm.audit_out)
$$;

-- A page of entries read newest first, up to p_limit + 1 of them (the
-- extra one says another page follows): {"data": [...], "next_cursor":
-- "<last id>" | null}; meta the cursor.
CREATE FUNCTION tm.audit_page(p_rows tm.audit_log[], p_limit int)
RETURNS tm_api.result
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_items text[] := '{}';
  v_next bigint;
  i int;
BEGIN
  FOR i IN 1 .. least(coalesce(cardinality(p_rows), 0), p_limit) LOOP
    v_items := v_items || tm.audit_json(p_rows[i])::text;
  END LOOP;
  IF cardinality(p_rows) > p_limit THEN
    v_next := p_rows[p_limit].id;
  END IF;
  RETURN (200,
          '{"data":[' || array_to_string(v_items, ',') || '],"next_cursor":'
            || coalesce('"' || v_next || '"', 'null') || '}',
          v_next::text)::tm_api.result;
END
$$;

-- The workspace's log, newest first (owner and admin).  p_limit 1..200
-- (checked by nginx, clamped here too); p_before: the cursor (entries
-- older than it); p_type, p_actor: optional filters.
CREATE FUNCTION tm_api.audit_list(p_uid uuid, p_sid uuid, p_ws uuid,
                                  p_limit int, p_before bigint, p_type text,
                                  p_actor uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  v_limit int := least(greatest(coalesce(p_limit, 50), 1), 200);
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  IF e.role NOT IN ('owner', 'admin') THEN
    RETURN tm_api.err(403, 'forbidden',
                      'only an admin or owner can read the audit log');
  END IF;
  RETURN tm.audit_page(ARRAY(
           SELECT l FROM tm.audit_log l
            WHERE l.workspace_id = p_ws
              AND l.id < coalesce(p_before, 9223372036854775807)
              AND (p_type IS NULL OR l.entity_type = p_type)
              AND (p_actor IS NULL OR l.actor_id = p_actor)
            ORDER BY l.id DESC LIMIT v_limit + 1), v_limit);
END
$$;

-- A task's activity: its own entries and its comments', newest first.  Any
-- member reads it while the task exists, soft-deleted or not; after a
-- purge only the workspace's log has it.
CREATE FUNCTION tm_api.task_activity(p_uid uuid, p_sid uuid, p_ws uuid,
                                     p_task uuid, p_limit int,
                                     p_before bigint)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  v_limit int := least(greatest(coalesce(p_limit, 50), 1), 200);
BEGIN
  SELECT * INTO e FROM tm.enter_checked(p_uid, p_sid, p_ws);
  IF e.role IS NULL THEN
    RETURN e.err;
  END IF;
  PERFORM 1 FROM tm.tasks WHERE workspace_id = p_ws AND id = p_task;
  IF NOT FOUND THEN
    RETURN tm_api.err(404, 'not_found', 'task not found');
  END IF;
  RETURN tm.audit_page(ARRAY(
           SELECT l FROM tm.audit_log l
            WHERE l.workspace_id = p_ws AND l.task_id = p_task
              AND l.id < coalesce(p_before, 9223372036854775807)
            ORDER BY l.id DESC LIMIT v_limit + 1), v_limit);
END
$$;

-- ---------------------------------------------------------------------------
-- privileges: read and append only
-- ---------------------------------------------------------------------------

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tm, tm_api TO taskmgr_app;
GRANT SELECT, INSERT ON tm.audit_log TO taskmgr_app;
