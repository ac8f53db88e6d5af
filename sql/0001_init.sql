-- taskmgr schema, version 1.
--
-- Tables live in schema tm, the functions nginx calls in schema tm_api.
-- nginx connects as taskmgr_app: it may execute tm_api functions and touch
-- the tables they need; row-level security scopes every tenant table to the
-- workspace (tm.ws) and user (tm.uid) that the calling function sets for
-- its own transaction.
--
-- Every tm_api function answers one row (status int, body text, meta text):
--   status < 400: body is the JSON response body, meta is per function
--                 (an id, a version, a cursor);
--   status >= 400: body is the problem code, meta the detail message.

SET client_min_messages = warning;

CREATE SCHEMA tm;
CREATE SCHEMA tm_api;

CREATE TYPE tm_api.result AS (status int, body text, meta text);

-- ---------------------------------------------------------------------------
-- helpers
-- ---------------------------------------------------------------------------

-- UUIDv7 (RFC 9562): 48-bit unix milliseconds, then random bits.
CREATE FUNCTION tm.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
           set_bit(set_bit(
             overlay(uuid_send(gen_random_uuid())
                     PLACING substring(int8send(
                       floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                       FROM 3)
                     FROM 1 FOR 6),
             52, 1), 53, 1),
           'hex')::uuid
$$;

-- RFC 3339 UTC with milliseconds.
CREATE FUNCTION tm.ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE FUNCTION tm.now_ms() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT date_trunc('milliseconds', now())
$$;

CREATE FUNCTION tm.cur_ws() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT nullif(current_setting('tm.ws', true), '')::uuid
$$;

CREATE FUNCTION tm.cur_uid() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT nullif(current_setting('tm.uid', true), '')::uuid
$$;

CREATE FUNCTION tm_api.err(p_status int, p_code text, p_detail text)
RETURNS tm_api.result
LANGUAGE sql IMMUTABLE AS $$
  SELECT (p_status, p_code, p_detail)::tm_api.result
$$;

CREATE FUNCTION tm.labels_ok(l text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT cardinality(l) <= 50
     AND array_position(l, NULL) IS NULL
     AND coalesce((SELECT bool_and(char_length(x) BETWEEN 1 AND 64)
                   FROM unnest(l) AS x), true)
$$;

-- ---------------------------------------------------------------------------
-- tables
-- ---------------------------------------------------------------------------

CREATE TABLE tm.users (
  id            uuid PRIMARY KEY DEFAULT tm.uuid_v7(),
  email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
  password_hash text NOT NULL,
  name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  locale        text NOT NULL DEFAULT 'en' CHECK (char_length(locale) BETWEEN 2 AND 35),
  timezone      text NOT NULL DEFAULT 'UTC' CHECK (char_length(timezone) BETWEEN 1 AND 64),
  created_at    timestamptz NOT NULL DEFAULT tm.now_ms(),
  updated_at    timestamptz NOT NULL DEFAULT tm.now_ms()
);
CREATE UNIQUE INDEX users_email_key ON tm.users (lower(email));

-- A session is one login; its refresh tokens form one family.
CREATE TABLE tm.sessions (
  id           uuid PRIMARY KEY DEFAULT tm.uuid_v7(),
  user_id      uuid NOT NULL REFERENCES tm.users (id) ON DELETE CASCADE,
  device_name  text CHECK (char_length(device_name) <= 200),
  ip           text CHECK (char_length(ip) <= 64),
  user_agent   text CHECK (char_length(user_agent) <= 512),
  created_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  last_used_at timestamptz NOT NULL DEFAULT tm.now_ms(),
  expires_at   timestamptz NOT NULL,
  revoked_at   timestamptz
);
CREATE INDEX sessions_user_idx ON tm.sessions (user_id);

-- Refresh tokens are stored only as SHA-256 hashes.
CREATE TABLE tm.refresh_tokens (
  token_hash  text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  session_id  uuid NOT NULL REFERENCES tm.sessions (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT tm.now_ms(),
  rotated_at  timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON tm.refresh_tokens (session_id);

CREATE TABLE tm.workspaces (
  id         uuid PRIMARY KEY DEFAULT tm.uuid_v7(),
  name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  personal   boolean NOT NULL DEFAULT false,
  created_by uuid NOT NULL REFERENCES tm.users (id),
  created_at timestamptz NOT NULL DEFAULT tm.now_ms(),
  updated_at timestamptz NOT NULL DEFAULT tm.now_ms()
);

CREATE TABLE tm.workspace_members (
  workspace_id uuid NOT NULL REFERENCES tm.workspaces (id) ON DELETE CASCADE,
  user_id      uuid NOT NULL REFERENCES tm.users (id) ON DELETE CASCADE,
  role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
  created_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON tm.workspace_members (user_id, workspace_id);

CREATE TABLE tm.projects (
  workspace_id uuid NOT NULL REFERENCES tm.workspaces (id) ON DELETE CASCADE,
  id           uuid NOT NULL DEFAULT tm.uuid_v7(),
  name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  description  text NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
  created_by   uuid REFERENCES tm.users (id),
  created_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  updated_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  archived_at  timestamptz,
  PRIMARY KEY (workspace_id, id)
);

CREATE TABLE tm.tasks (
  workspace_id uuid NOT NULL REFERENCES tm.workspaces (id) ON DELETE CASCADE,
  id           uuid NOT NULL DEFAULT tm.uuid_v7(),
  project_id   uuid,
  parent_id    uuid,
  title        text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
  description  text NOT NULL DEFAULT '' CHECK (char_length(description) <= 100000),
  status       text NOT NULL DEFAULT 'todo'
               CHECK (status IN ('todo', 'in_progress', 'done', 'archived')),
  priority     smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 4),
  due_at       timestamptz,
  assignee_id  uuid REFERENCES tm.users (id),
  labels       text[] NOT NULL DEFAULT '{}' CHECK (tm.labels_ok(labels)),
  created_by   uuid NOT NULL REFERENCES tm.users (id),
  created_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  updated_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  completed_at timestamptz,
  deleted_at   timestamptz,
  version      int NOT NULL DEFAULT 1 CHECK (version >= 1),
  PRIMARY KEY (workspace_id, id),
  FOREIGN KEY (workspace_id, project_id) REFERENCES tm.projects (workspace_id, id),
  FOREIGN KEY (workspace_id, parent_id) REFERENCES tm.tasks (workspace_id, id),
  CHECK (parent_id IS NULL OR parent_id <> id)
);

-- The default list: newest first, keyset on (created_at, id), live rows.
CREATE INDEX tasks_list_idx ON tm.tasks (workspace_id, created_at DESC, id DESC)
  WHERE deleted_at IS NULL;
CREATE INDEX tasks_parent_idx ON tm.tasks (workspace_id, parent_id)
  WHERE parent_id IS NOT NULL;
CREATE INDEX tasks_project_idx ON tm.tasks (workspace_id, project_id)
  WHERE project_id IS NOT NULL;
CREATE INDEX tasks_assignee_idx ON tm.tasks (assignee_id)
  WHERE assignee_id IS NOT NULL;

-- ---------------------------------------------------------------------------
-- row-level security: the second line of tenant isolation
-- ---------------------------------------------------------------------------

ALTER TABLE tm.workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE tm.workspace_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE tm.projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE tm.tasks ENABLE ROW LEVEL SECURITY;

CREATE POLICY workspaces_tenant ON tm.workspaces
  USING (id = tm.cur_ws()
         OR id IN (SELECT m.workspace_id FROM tm.workspace_members m
                   WHERE m.user_id = tm.cur_uid()));

CREATE POLICY members_tenant ON tm.workspace_members
  USING (workspace_id = tm.cur_ws() OR user_id = tm.cur_uid());

CREATE POLICY projects_tenant ON tm.projects
  USING (workspace_id = tm.cur_ws());

CREATE POLICY tasks_tenant ON tm.tasks
  USING (workspace_id = tm.cur_ws());

-- ---------------------------------------------------------------------------
-- JSON shapes
-- ---------------------------------------------------------------------------

-- row_to_json of a typed row gives compact JSON with the keys in order.
CREATE TYPE tm.user_out AS (
  id uuid, email text, name text, locale text, timezone text,
  created_at text, updated_at text);

CREATE FUNCTION tm.user_json(u tm.users) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(u.id, u.email, u.name, u.locale, u.timezone,
                         tm.ts(u.created_at), tm.ts(u.updated_at))::tm.user_out)
$$;

CREATE TYPE tm.workspace_out AS (
  id uuid, name text, personal boolean, role text, created_by uuid,
  created_at text, updated_at text);

CREATE FUNCTION tm.workspace_json(w tm.workspaces, p_role text) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(w.id, w.name, w.personal, p_role, w.created_by,
                         tm.ts(w.created_at),
                         tm.ts(w.updated_at))::tm.workspace_out)
$$;

-- ---------------------------------------------------------------------------
-- context: session and membership checks
-- ---------------------------------------------------------------------------

-- A token without sid (minted by another trusted issuer) is not tied to a
-- session; every token this service issues has one.
CREATE FUNCTION tm.session_live(p_uid uuid, p_sid uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT p_sid IS NULL
      OR EXISTS (SELECT 1 FROM tm.sessions s
                 WHERE s.id = p_sid AND s.user_id = p_uid
                   AND s.revoked_at IS NULL AND s.expires_at > now())
$$;

-- Sets the RLS context and answers the caller's role in p_ws: NULL when the
-- session is dead (401), '' when the caller is not a member of p_ws or
-- p_ws is NULL.
CREATE FUNCTION tm.enter(p_uid uuid, p_sid uuid, p_ws uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
BEGIN
  PERFORM set_config('tm.uid', p_uid::text, true),
          set_config('tm.ws', coalesce(p_ws::text, ''), true);
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN NULL;
  END IF;
  IF p_ws IS NOT NULL THEN
    SELECT m.role INTO v_role FROM tm.workspace_members m
     WHERE m.workspace_id = p_ws AND m.user_id = p_uid;
  END IF;
  RETURN coalesce(v_role, '');
END
$$;

-- ---------------------------------------------------------------------------
-- auth
-- ---------------------------------------------------------------------------

CREATE FUNCTION tm.new_session(p_uid uuid, p_refresh_hash text,
                               p_device text, p_ip text, p_ua text,
                               p_ttl_s int) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  v_sid uuid;
BEGIN
  INSERT INTO tm.sessions (user_id, device_name, ip, user_agent, expires_at)
  VALUES (p_uid, left(p_device, 200), left(p_ip, 64), left(p_ua, 512),
          now() + make_interval(secs => p_ttl_s))
  RETURNING id INTO v_sid;
  INSERT INTO tm.refresh_tokens (token_hash, session_id)
  VALUES (p_refresh_hash, v_sid);
  RETURN v_sid;
END
$$;

-- 201 body: the user; meta: "<user id> <session id>"
CREATE FUNCTION tm_api.register(p_email text, p_hash text, p_name text,
                                p_refresh_hash text, p_device text,
                                p_ip text, p_ua text, p_ttl_s int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  u tm.users;
  v_ws uuid;
  v_sid uuid;
BEGIN
  INSERT INTO tm.users (email, password_hash, name)
  VALUES (p_email, p_hash, p_name)
  ON CONFLICT ((lower(email))) DO NOTHING
  RETURNING * INTO u;

  IF u.id IS NULL THEN
    RETURN tm_api.err(409, 'conflict', 'email is already registered');
  END IF;

  v_ws := tm.uuid_v7();
  PERFORM set_config('tm.uid', u.id::text, true);
  PERFORM set_config('tm.ws', v_ws::text, true);

  INSERT INTO tm.workspaces (id, name, personal, created_by)
  VALUES (v_ws, left(p_name, 180) || '''s workspace', true, u.id);
  INSERT INTO tm.workspace_members (workspace_id, user_id, role)
  VALUES (v_ws, u.id, 'owner');

  v_sid := tm.new_session(u.id, p_refresh_hash, p_device, p_ip, p_ua, p_ttl_s);

  RETURN (201, tm.user_json(u)::text, u.id || ' ' || v_sid)::tm_api.result;
END
$$;

-- 200 body: the password hash; meta: the user id.  404 when unknown.
CREATE FUNCTION tm_api.login_lookup(p_email text) RETURNS tm_api.result
LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT (200, u.password_hash, u.id::text)::tm_api.result
       FROM tm.users u WHERE lower(u.email) = lower(p_email)),
    tm_api.err(404, 'not_found', 'no such account'))
$$;

-- 200 body: the user; meta: "<user id> <session id>"
CREATE FUNCTION tm_api.session_create(p_uid uuid, p_refresh_hash text,
                                      p_device text, p_ip text, p_ua text,
                                      p_ttl_s int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  u tm.users;
  v_sid uuid;
BEGIN
  SELECT * INTO u FROM tm.users WHERE id = p_uid;
  IF u.id IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized', 'invalid credentials');
  END IF;
  v_sid := tm.new_session(u.id, p_refresh_hash, p_device, p_ip, p_ua, p_ttl_s);
  RETURN (200, tm.user_json(u)::text, u.id || ' ' || v_sid)::tm_api.result;
END
$$;

-- Rotates a refresh token.  A token presented a second time revokes its
-- whole family (the session).  200 meta: "<user id> <session id>".
-- Sessions slide by p_ttl_s on every refresh, capped at 90 days from login.
CREATE FUNCTION tm_api.refresh(p_old_hash text, p_new_hash text, p_ttl_s int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  t tm.refresh_tokens;
  s tm.sessions;
BEGIN
  SELECT * INTO t FROM tm.refresh_tokens WHERE token_hash = p_old_hash
    FOR UPDATE;
  IF t.token_hash IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized', 'invalid refresh token');
  END IF;

  SELECT * INTO s FROM tm.sessions WHERE id = t.session_id FOR UPDATE;

  IF t.rotated_at IS NOT NULL THEN
    UPDATE tm.sessions SET revoked_at = coalesce(revoked_at, now())
     WHERE id = s.id;
    RETURN tm_api.err(401, 'unauthorized',
                      'refresh token reuse detected, session revoked');
  END IF;

  IF s.revoked_at IS NOT NULL OR s.expires_at <= now() THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;

  UPDATE tm.refresh_tokens SET rotated_at = now()
   WHERE token_hash = p_old_hash;
  INSERT INTO tm.refresh_tokens (token_hash, session_id)
  VALUES (p_new_hash, s.id);
  UPDATE tm.sessions
     SET last_used_at = tm.now_ms(),
         expires_at = least(now() + make_interval(secs => p_ttl_s),
                            created_at + interval '90 days')
   WHERE id = s.id;

  RETURN (200, NULL, s.user_id || ' ' || s.id)::tm_api.result;
END
$$;

CREATE FUNCTION tm_api.logout(p_uid uuid, p_sid uuid) RETURNS tm_api.result
LANGUAGE plpgsql AS $$
BEGIN
  IF p_sid IS NULL THEN
    RETURN tm_api.err(400, 'validation_failed',
                      'the token is not tied to a session');
  END IF;
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  UPDATE tm.sessions SET revoked_at = coalesce(revoked_at, now())
   WHERE id = p_sid AND user_id = p_uid;
  RETURN (204, NULL, NULL)::tm_api.result;
END
$$;

CREATE FUNCTION tm_api.me(p_uid uuid, p_sid uuid) RETURNS tm_api.result
LANGUAGE plpgsql STABLE AS $$
DECLARE
  u tm.users;
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  SELECT * INTO u FROM tm.users WHERE id = p_uid;
  IF u.id IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized', 'no such user');
  END IF;
  RETURN (200, tm.user_json(u)::text, NULL)::tm_api.result;
END
$$;

-- p_patch holds only validated keys: name, locale, timezone.
CREATE FUNCTION tm_api.me_update(p_uid uuid, p_sid uuid, p_patch jsonb)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  u tm.users;
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  UPDATE tm.users SET
    name = CASE WHEN p_patch ? 'name' THEN p_patch->>'name' ELSE name END,
    locale = CASE WHEN p_patch ? 'locale' THEN p_patch->>'locale' ELSE locale END,
    timezone = CASE WHEN p_patch ? 'timezone' THEN p_patch->>'timezone'
                    ELSE timezone END,
    updated_at = tm.now_ms()
  WHERE id = p_uid
  RETURNING * INTO u;
  IF u.id IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized', 'no such user');
  END IF;
  RETURN (200, tm.user_json(u)::text, NULL)::tm_api.result;
END
$$;

-- ---------------------------------------------------------------------------
-- workspaces
-- ---------------------------------------------------------------------------

CREATE FUNCTION tm_api.workspace_list(p_uid uuid, p_sid uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_body text;
BEGIN
  IF tm.enter(p_uid, p_sid, NULL) IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  -- bounded: a user belongs to at most a few hundred workspaces in practice;
  -- the list answers the first 500 by creation time
  SELECT '{"data":' || coalesce(json_agg(x.j ORDER BY x.created_at, x.id),
                               '[]') || '}'
    INTO v_body
    FROM (SELECT tm.workspace_json(w, m.role) AS j, w.created_at, w.id
            FROM tm.workspace_members m
            JOIN tm.workspaces w ON w.id = m.workspace_id
           WHERE m.user_id = p_uid
           ORDER BY w.created_at, w.id
           LIMIT 500) x;
  RETURN (200, v_body, NULL)::tm_api.result;
END
$$;

-- p_body: {"name": "..."} validated by nginx.
CREATE FUNCTION tm_api.workspace_create(p_uid uuid, p_sid uuid, p_body jsonb)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  w tm.workspaces;
  v_ws uuid := tm.uuid_v7();
BEGIN
  IF tm.enter(p_uid, p_sid, NULL) IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  -- the new workspace is the tenant of the rows below
  PERFORM set_config('tm.ws', v_ws::text, true);
  IF (SELECT count(*) FROM tm.workspace_members WHERE user_id = p_uid) >= 500 THEN
    RETURN tm_api.err(403, 'quota_exceeded',
                      'a user can belong to at most 500 workspaces');
  END IF;
  INSERT INTO tm.workspaces (id, name, created_by)
  VALUES (v_ws, p_body->>'name', p_uid)
  RETURNING * INTO w;
  INSERT INTO tm.workspace_members (workspace_id, user_id, role)
  VALUES (v_ws, p_uid, 'owner');
  RETURN (201, tm.workspace_json(w, 'owner')::text, w.id::text)::tm_api.result;
END
$$;

CREATE FUNCTION tm_api.workspace_get(p_uid uuid, p_sid uuid, p_ws uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
  w tm.workspaces;
BEGIN
  v_role := tm.enter(p_uid, p_sid, p_ws);
  IF v_role IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  IF v_role = '' THEN
    RETURN tm_api.err(404, 'not_found', 'workspace not found');
  END IF;
  SELECT * INTO w FROM tm.workspaces WHERE id = p_ws;
  RETURN (200, tm.workspace_json(w, v_role)::text, NULL)::tm_api.result;
END
$$;

-- ---------------------------------------------------------------------------
-- tasks
-- ---------------------------------------------------------------------------

-- Task functions answer rows of tm_api.task_row: nginx turns the columns
-- into JSON itself, which costs far less than building it here.  An error
-- is a single row with http_status >= 400 and the detail; the task columns
-- are then NULL.
CREATE TYPE tm_api.task_row AS (
  http_status int, detail text,
  id uuid, workspace_id uuid, project_id uuid, parent_id uuid, title text,
  description text, status text, priority smallint, due_at timestamptz,
  assignee_id uuid, labels text, created_by uuid, created_at timestamptz,
  updated_at timestamptz, completed_at timestamptz, deleted_at timestamptz,
  version int);

CREATE FUNCTION tm.task_out(p_status int, t tm.tasks) RETURNS tm_api.task_row
LANGUAGE sql IMMUTABLE AS $$
  SELECT (p_status, NULL, t.id, t.workspace_id, t.project_id, t.parent_id,
          t.title, t.description, t.status, t.priority, t.due_at,
          t.assignee_id, array_to_json(t.labels)::text, t.created_by,
          t.created_at, t.updated_at, t.completed_at, t.deleted_at,
          t.version)::tm_api.task_row
$$;

CREATE FUNCTION tm.task_err(p_status int, p_detail text)
RETURNS tm_api.task_row
LANGUAGE sql IMMUTABLE AS $$
  SELECT ROW(p_status, p_detail, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL)::tm_api.task_row
$$;

-- Newest first, keyset on (created_at, id): up to p_limit + 1 rows, the
-- extra one only tells that there is a next page.
CREATE FUNCTION tm_api.task_list(p_uid uuid, p_sid uuid, p_ws uuid,
                                 p_limit int, p_after_ts timestamptz,
                                 p_after_id uuid)
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
BEGIN
  PERFORM set_config('tm.uid', p_uid::text, true),
          set_config('tm.ws', p_ws::text, true);

  RETURN QUERY
    SELECT 200, NULL::text, t.id, t.workspace_id, t.project_id, t.parent_id,
           t.title, t.description, t.status, t.priority, t.due_at,
           t.assignee_id, array_to_json(t.labels)::text, t.created_by,
           t.created_at, t.updated_at, t.completed_at, t.deleted_at,
           t.version
      FROM tm.tasks t
     WHERE t.workspace_id = p_ws AND t.deleted_at IS NULL
       -- one condition for both cases keeps the index usable by a
       -- generic plan
       AND (t.created_at, t.id)
           < (coalesce(p_after_ts, 'infinity'),
              coalesce(p_after_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
       -- the read gate, written out: as a function call it is not
       -- inlined and costs more than the whole query
       AND EXISTS (SELECT 1 FROM tm.workspace_members m
                    WHERE m.workspace_id = p_ws AND m.user_id = p_uid)
       AND (p_sid IS NULL
            OR EXISTS (SELECT 1 FROM tm.sessions s
                        WHERE s.id = p_sid AND s.user_id = p_uid
                          AND s.revoked_at IS NULL
                          AND s.expires_at > now()))
     ORDER BY t.created_at DESC, t.id DESC
     LIMIT p_limit + 1;

  IF NOT FOUND THEN
    -- an empty page, or no live session (401), or no membership (404)
    v_role := tm.enter(p_uid, p_sid, p_ws);
    IF v_role IS NULL THEN
      RETURN NEXT tm.task_err(401, 'session has ended');
    ELSIF v_role = '' THEN
      RETURN NEXT tm.task_err(404, 'workspace not found');
    END IF;
  END IF;
END
$$;

CREATE FUNCTION tm_api.task_get(p_uid uuid, p_sid uuid, p_ws uuid, p_id uuid)
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
BEGIN
  PERFORM set_config('tm.uid', p_uid::text, true),
          set_config('tm.ws', p_ws::text, true);

  RETURN QUERY
    SELECT 200, NULL::text, t.id, t.workspace_id, t.project_id, t.parent_id,
           t.title, t.description, t.status, t.priority, t.due_at,
           t.assignee_id, array_to_json(t.labels)::text, t.created_by,
           t.created_at, t.updated_at, t.completed_at, t.deleted_at,
           t.version
      FROM tm.tasks t
     WHERE t.workspace_id = p_ws AND t.id = p_id AND t.deleted_at IS NULL
       AND EXISTS (SELECT 1 FROM tm.workspace_members m
                    WHERE m.workspace_id = p_ws AND m.user_id = p_uid)
       AND (p_sid IS NULL
            OR EXISTS (SELECT 1 FROM tm.sessions s
                        WHERE s.id = p_sid AND s.user_id = p_uid
                          AND s.revoked_at IS NULL
                          AND s.expires_at > now()));

  IF NOT FOUND THEN
    v_role := tm.enter(p_uid, p_sid, p_ws);
    IF v_role IS NULL THEN
      RETURN NEXT tm.task_err(401, 'session has ended');
    ELSIF v_role = '' THEN
      RETURN NEXT tm.task_err(404, 'workspace not found');
    ELSE
      RETURN NEXT tm.task_err(404, 'task not found');
    END IF;
  END IF;
END
$$;

-- Checks the references a task body makes; NULL when fine, else the error.
CREATE FUNCTION tm.task_refs_check(p_ws uuid, p_id uuid, p_body jsonb)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_uuid uuid;
BEGIN
  IF p_body ? 'assignee_id' AND jsonb_typeof(p_body->'assignee_id') = 'string' THEN
    v_uuid := (p_body->>'assignee_id')::uuid;
    IF NOT EXISTS (SELECT 1 FROM tm.workspace_members
                   WHERE workspace_id = p_ws AND user_id = v_uuid) THEN
      RETURN tm_api.err(422, 'validation_failed',
                        'assignee_id: not a member of this workspace');
    END IF;
  END IF;
  IF p_body ? 'project_id' AND jsonb_typeof(p_body->'project_id') = 'string' THEN
    v_uuid := (p_body->>'project_id')::uuid;
    IF NOT EXISTS (SELECT 1 FROM tm.projects
                   WHERE workspace_id = p_ws AND id = v_uuid) THEN
      RETURN tm_api.err(422, 'validation_failed',
                        'project_id: no such project in this workspace');
    END IF;
  END IF;
  IF p_body ? 'parent_id' AND jsonb_typeof(p_body->'parent_id') = 'string' THEN
    v_uuid := (p_body->>'parent_id')::uuid;
    IF v_uuid = p_id THEN
      RETURN tm_api.err(422, 'validation_failed',
                        'parent_id: a task cannot be its own parent');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM tm.tasks
                   WHERE workspace_id = p_ws AND id = v_uuid
                     AND deleted_at IS NULL) THEN
      RETURN tm_api.err(422, 'validation_failed',
                        'parent_id: no such task in this workspace');
    END IF;
    -- no cycles: the new parent must not descend from this task
    IF p_id IS NOT NULL AND EXISTS (
         WITH RECURSIVE up(id, depth) AS (
           SELECT v_uuid, 1
           UNION ALL
           SELECT t.parent_id, up.depth + 1 FROM tm.tasks t JOIN up ON t.id = up.id
            WHERE t.workspace_id = p_ws AND t.parent_id IS NOT NULL AND up.depth < 64)
         SELECT 1 FROM up WHERE up.id = p_id) THEN
      RETURN tm_api.err(422, 'validation_failed',
                        'parent_id: that would make a cycle');
    END IF;
  END IF;
  RETURN NULL;
END
$$;

-- p_body holds validated fields only (nginx rejects unknown ones).  The
-- hot write path: the role lookup is written out rather than a call to
-- tm.enter(), which would cost a nested function execution.
CREATE FUNCTION tm_api.task_create(p_uid uuid, p_sid uuid, p_ws uuid,
                                   p_body jsonb)
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
  v_err tm_api.result;
  v_status text := coalesce(p_body->>'status', 'todo');
BEGIN
  PERFORM set_config('tm.uid', p_uid::text, true),
          set_config('tm.ws', p_ws::text, true);

  SELECT m.role INTO v_role FROM tm.workspace_members m
   WHERE m.workspace_id = p_ws AND m.user_id = p_uid
     AND (p_sid IS NULL
          OR EXISTS (SELECT 1 FROM tm.sessions s
                      WHERE s.id = p_sid AND s.user_id = p_uid
                        AND s.revoked_at IS NULL AND s.expires_at > now()));

  IF v_role IS NULL THEN
    IF tm.session_live(p_uid, p_sid) THEN
      RETURN NEXT tm.task_err(404, 'workspace not found');
    ELSE
      RETURN NEXT tm.task_err(401, 'session has ended');
    END IF;
    RETURN;
  END IF;
  IF v_role = 'viewer' THEN
    RETURN NEXT tm.task_err(403, 'viewers cannot create tasks');
    RETURN;
  END IF;
  IF p_body ?| ARRAY['assignee_id', 'project_id', 'parent_id'] THEN
    v_err := tm.task_refs_check(p_ws, NULL, p_body);
    IF v_err IS NOT NULL THEN
      RETURN NEXT tm.task_err(v_err.status, v_err.meta);
      RETURN;
    END IF;
  END IF;

  RETURN QUERY
    INSERT INTO tm.tasks AS t (workspace_id, project_id, parent_id, title,
                               description, status, priority, due_at,
                               assignee_id, labels, created_by, completed_at)
    VALUES (p_ws,
            (p_body->>'project_id')::uuid,
            (p_body->>'parent_id')::uuid,
            p_body->>'title',
            coalesce(p_body->>'description', ''),
            v_status,
            coalesce((p_body->>'priority')::smallint, 0),
            date_trunc('milliseconds', (p_body->>'due_at')::timestamptz),
            (p_body->>'assignee_id')::uuid,
            CASE WHEN jsonb_typeof(p_body->'labels') = 'array'
                 THEN ARRAY(SELECT jsonb_array_elements_text(p_body->'labels'))
                 ELSE '{}' END,
            p_uid,
            CASE WHEN v_status = 'done' THEN tm.now_ms() END)
    RETURNING 201, NULL::text, t.id, t.workspace_id, t.project_id,
              t.parent_id, t.title, t.description, t.status, t.priority,
              t.due_at, t.assignee_id, array_to_json(t.labels)::text,
              t.created_by, t.created_at, t.updated_at, t.completed_at,
              t.deleted_at, t.version;
END
$$;

-- JSON merge patch of a task.  p_if_match: the version the client saw, or
-- NULL.
CREATE FUNCTION tm_api.task_update(p_uid uuid, p_sid uuid, p_ws uuid,
                                   p_id uuid, p_patch jsonb, p_if_match int)
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
  v_err tm_api.result;
  t tm.tasks;
  n tm.tasks;
BEGIN
  v_role := tm.enter(p_uid, p_sid, p_ws);
  IF v_role IS NULL THEN
    RETURN NEXT tm.task_err(401, 'session has ended');
    RETURN;
  END IF;
  IF v_role = '' THEN
    RETURN NEXT tm.task_err(404, 'workspace not found');
    RETURN;
  END IF;
  SELECT * INTO t FROM tm.tasks
   WHERE workspace_id = p_ws AND id = p_id AND deleted_at IS NULL
   FOR UPDATE;
  IF t.id IS NULL THEN
    RETURN NEXT tm.task_err(404, 'task not found');
    RETURN;
  END IF;
  IF v_role = 'viewer' THEN
    RETURN NEXT tm.task_err(403, 'viewers cannot change tasks');
    RETURN;
  END IF;
  IF p_if_match IS NOT NULL AND p_if_match <> t.version THEN
    RETURN NEXT tm.task_err(412, 'the task has changed since that version');
    RETURN;
  END IF;
  v_err := tm.task_refs_check(p_ws, p_id, p_patch);
  IF v_err IS NOT NULL THEN
    RETURN NEXT tm.task_err(v_err.status, v_err.meta);
    RETURN;
  END IF;

  n := t;
  IF p_patch ? 'title' THEN n.title := p_patch->>'title'; END IF;
  IF p_patch ? 'description' THEN
    n.description := coalesce(p_patch->>'description', '');
  END IF;
  IF p_patch ? 'status' THEN n.status := p_patch->>'status'; END IF;
  IF p_patch ? 'priority' THEN
    n.priority := coalesce((p_patch->>'priority')::smallint, 0);
  END IF;
  IF p_patch ? 'due_at' THEN
    n.due_at := date_trunc('milliseconds', (p_patch->>'due_at')::timestamptz);
  END IF;
  IF p_patch ? 'assignee_id' THEN
    n.assignee_id := (p_patch->>'assignee_id')::uuid;
  END IF;
  IF p_patch ? 'project_id' THEN
    n.project_id := (p_patch->>'project_id')::uuid;
  END IF;
  IF p_patch ? 'parent_id' THEN
    n.parent_id := (p_patch->>'parent_id')::uuid;
  END IF;
  IF p_patch ? 'labels' THEN
    n.labels := coalesce(ARRAY(SELECT jsonb_array_elements_text(
                                 CASE WHEN jsonb_typeof(p_patch->'labels') = 'array'
                                      THEN p_patch->'labels' ELSE '[]' END)),
                         '{}');
  END IF;

  IF n.status = 'done' AND t.status <> 'done' THEN
    n.completed_at := tm.now_ms();
  ELSIF n.status <> 'done' THEN
    n.completed_at := NULL;
  END IF;

  IF (n.title, n.description, n.status, n.priority, n.due_at, n.assignee_id,
      n.project_id, n.parent_id, n.labels)
     IS NOT DISTINCT FROM
     (t.title, t.description, t.status, t.priority, t.due_at, t.assignee_id,
      t.project_id, t.parent_id, t.labels) THEN
    -- nothing changed: no new version
    RETURN NEXT tm.task_out(200, t);
    RETURN;
  END IF;

  UPDATE tm.tasks SET
    title = n.title, description = n.description, status = n.status,
    priority = n.priority, due_at = n.due_at, assignee_id = n.assignee_id,
    project_id = n.project_id, parent_id = n.parent_id, labels = n.labels,
    completed_at = n.completed_at, updated_at = tm.now_ms(),
    version = t.version + 1
  WHERE workspace_id = p_ws AND id = p_id
  RETURNING * INTO n;

  RETURN NEXT tm.task_out(200, n);
END
$$;

CREATE FUNCTION tm_api.task_delete(p_uid uuid, p_sid uuid, p_ws uuid,
                                   p_id uuid, p_if_match int)
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
  t tm.tasks;
BEGIN
  v_role := tm.enter(p_uid, p_sid, p_ws);
  IF v_role IS NULL THEN
    RETURN NEXT tm.task_err(401, 'session has ended');
    RETURN;
  END IF;
  IF v_role = '' THEN
    RETURN NEXT tm.task_err(404, 'workspace not found');
    RETURN;
  END IF;
  SELECT * INTO t FROM tm.tasks
   WHERE workspace_id = p_ws AND id = p_id AND deleted_at IS NULL
   FOR UPDATE;
  IF t.id IS NULL THEN
    RETURN NEXT tm.task_err(404, 'task not found');
    RETURN;
  END IF;
  IF v_role = 'viewer' THEN
    RETURN NEXT tm.task_err(403, 'viewers cannot delete tasks');
    RETURN;
  END IF;
  IF p_if_match IS NOT NULL AND p_if_match <> t.version THEN
    RETURN NEXT tm.task_err(412, 'the task has changed since that version');
    RETURN;
  END IF;
  UPDATE tm.tasks SET deleted_at = tm.now_ms(), updated_at = tm.now_ms(),
                      version = version + 1
   WHERE workspace_id = p_ws AND id = p_id
  RETURNING * INTO t;
  RETURN NEXT tm.task_out(204, t);
END
$$;

CREATE FUNCTION tm_api.task_restore(p_uid uuid, p_sid uuid, p_ws uuid,
                                    p_id uuid)
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
  t tm.tasks;
BEGIN
  v_role := tm.enter(p_uid, p_sid, p_ws);
  IF v_role IS NULL THEN
    RETURN NEXT tm.task_err(401, 'session has ended');
    RETURN;
  END IF;
  IF v_role = '' THEN
    RETURN NEXT tm.task_err(404, 'workspace not found');
    RETURN;
  END IF;
  SELECT * INTO t FROM tm.tasks
   WHERE workspace_id = p_ws AND id = p_id FOR UPDATE;
  IF t.id IS NULL THEN
    RETURN NEXT tm.task_err(404, 'task not found');
    RETURN;
  END IF;
  IF v_role = 'viewer' THEN
    RETURN NEXT tm.task_err(403, 'viewers cannot restore tasks');
    RETURN;
  END IF;
  IF t.deleted_at IS NULL THEN
    RETURN NEXT tm.task_err(409, 'the task is not deleted');
    RETURN;
  END IF;
  UPDATE tm.tasks SET deleted_at = NULL, updated_at = tm.now_ms(),
                      version = version + 1
   WHERE workspace_id = p_ws AND id = p_id
  RETURNING * INTO t;
  RETURN NEXT tm.task_out(200, t);
END
$$;

-- ---------------------------------------------------------------------------
-- privileges: the app role reaches data only through these functions and
-- the row-level policies
-- ---------------------------------------------------------------------------

REVOKE ALL ON SCHEMA tm, tm_api FROM PUBLIC;
GRANT USAGE ON SCHEMA tm, tm_api TO taskmgr_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tm, tm_api TO taskmgr_app;
GRANT SELECT, INSERT, UPDATE ON tm.users, tm.sessions, tm.refresh_tokens,
  tm.workspaces, tm.workspace_members, tm.projects, tm.tasks TO taskmgr_app;
