-- taskmgr schema, version 2: sessions, revocation and password change.
--
-- Only new functions (and CREATE OR REPLACE of bodies that keep their
-- signature), so the previous release keeps working while this one rolls
-- out.  Functions that end sessions answer the ids of the sessions they
-- ended in meta (space separated, at most 500), so that nginx can write the
-- revocation keys to Redis.

SET client_min_messages = warning;

-- The caller's live sessions, newest first, most recent use first.
CREATE INDEX IF NOT EXISTS sessions_user_live_idx
  ON tm.sessions (user_id, created_at DESC) WHERE revoked_at IS NULL;

-- ---------------------------------------------------------------------------
-- JSON shapes
-- ---------------------------------------------------------------------------

CREATE TYPE tm.me_out AS (
  id uuid, email text, name text, locale text, timezone text,
  mfa_enabled boolean, created_at text, updated_at text);

-- The user as /v1/me shows it: with mfa_enabled (TOTP comes later).
CREATE FUNCTION tm.me_json(u tm.users) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(u.id, u.email, u.name, u.locale, u.timezone, false,
                         tm.ts(u.created_at), tm.ts(u.updated_at))::tm.me_out)
$$;

CREATE TYPE tm.session_out AS (
  id uuid, device_name text, ip text, user_agent text,
  created_at text, last_used_at text, current boolean);

-- ---------------------------------------------------------------------------
-- /v1/me
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION tm_api.me(p_uid uuid, p_sid uuid)
RETURNS tm_api.result
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
  RETURN (200, tm.me_json(u)::text, NULL)::tm_api.result;
END
$$;

CREATE OR REPLACE FUNCTION tm_api.me_update(p_uid uuid, p_sid uuid,
                                           p_patch jsonb)
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
  RETURN (200, tm.me_json(u)::text, NULL)::tm_api.result;
END
$$;

-- ---------------------------------------------------------------------------
-- sessions
-- ---------------------------------------------------------------------------

-- 200 {"data":[…]}: live sessions (not revoked, not expired), newest first,
-- at most 100.
CREATE FUNCTION tm_api.session_list(p_uid uuid, p_sid uuid)
RETURNS tm_api.result
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_body text;
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  SELECT '{"data":' || coalesce(json_agg(x.j ORDER BY x.created_at DESC,
                                                       x.id DESC),
                               '[]') || '}'
    INTO v_body
    FROM (SELECT row_to_json(ROW(s.id, s.device_name, s.ip, s.user_agent,
                                 tm.ts(s.created_at), tm.ts(s.last_used_at),
                                 coalesce(s.id = p_sid, false)
                             )::tm.session_out) AS j,
                 s.created_at, s.id
            FROM tm.sessions s
           WHERE s.user_id = p_uid AND s.revoked_at IS NULL
             AND s.expires_at > now()
           ORDER BY s.created_at DESC, s.id DESC
           LIMIT 100) x;
  RETURN (200, v_body, NULL)::tm_api.result;
END
$$;

-- 204, meta: the ended session id.  404 when p_target is not a live
-- session of the caller.
CREATE FUNCTION tm_api.session_revoke(p_uid uuid, p_sid uuid, p_target uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_id uuid;
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  UPDATE tm.sessions SET revoked_at = now()
   WHERE id = p_target AND user_id = p_uid AND revoked_at IS NULL
     AND expires_at > now()
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'no such session');
  END IF;
  RETURN (204, NULL, v_id::text)::tm_api.result;
END
$$;

-- Ends every live session of p_uid except p_keep (NULL: all); answers the
-- ids of at most 500 of them, newest first, space separated.
CREATE FUNCTION tm.revoke_sessions(p_uid uuid, p_keep uuid) RETURNS text
LANGUAGE sql AS $$
  WITH ended AS (
    UPDATE tm.sessions SET revoked_at = now()
     WHERE user_id = p_uid AND revoked_at IS NULL AND expires_at > now()
       AND (p_keep IS NULL OR id <> p_keep)
    RETURNING id, created_at)
  SELECT coalesce(string_agg(x.id::text, ' '), '')
    FROM (SELECT id FROM ended ORDER BY created_at DESC, id DESC LIMIT 500) x
$$;

-- 204, meta: the ended session ids.
CREATE FUNCTION tm_api.logout_all(p_uid uuid, p_sid uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  RETURN (204, NULL, tm.revoke_sessions(p_uid, NULL))::tm_api.result;
END
$$;

-- logout with the session id in meta, for the revocation key
CREATE FUNCTION tm_api.logout_session(p_uid uuid, p_sid uuid)
RETURNS tm_api.result
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
  RETURN (204, NULL, p_sid::text)::tm_api.result;
END
$$;

-- Rotates a refresh token, as tm_api.refresh; a reused token answers
-- status 401, body 'token_reuse', meta "<user id> <session id>" so that
-- nginx can write the session's revocation key.
CREATE FUNCTION tm_api.refresh_rotate(p_old_hash text, p_new_hash text,
                                      p_ttl_s int)
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
    RETURN (401, 'token_reuse', s.user_id || ' ' || s.id)::tm_api.result;
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

-- ---------------------------------------------------------------------------
-- password change
-- ---------------------------------------------------------------------------

-- 200 body: the password hash, meta: the email (for the password rules).
CREATE FUNCTION tm_api.password_lookup(p_uid uuid, p_sid uuid)
RETURNS tm_api.result
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
  RETURN (200, u.password_hash, u.email)::tm_api.result;
END
$$;

-- Sets the new hash if the old one is still current (409 otherwise: a
-- concurrent change) and ends every other live session.  204, meta: the
-- ended session ids.
CREATE FUNCTION tm_api.password_set(p_uid uuid, p_sid uuid, p_old_hash text,
                                    p_new_hash text)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_id uuid;
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  UPDATE tm.users SET password_hash = p_new_hash, updated_at = tm.now_ms()
   WHERE id = p_uid AND password_hash = p_old_hash
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    RETURN tm_api.err(409, 'conflict',
                      'the password was changed meanwhile, try again');
  END IF;
  RETURN (204, NULL, tm.revoke_sessions(p_uid, p_sid))::tm_api.result;
END
$$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tm, tm_api TO taskmgr_app;
