-- taskmgr schema, version 4: second factors (TOTP, recovery codes),
-- password reset and magic links (single-use tokens, an email outbox), API
-- keys (scoped to a workspace and a role; each has a session row, and
-- tm.enter caps its role).
--
-- TOTP codes are checked in nginx (RFC 6238 needs the secret and the
-- clock); PostgreSQL keeps the secret, the last time step used (a code is
-- accepted only for a later step: no replay) and the recovery codes' hashes.
-- With taskmgr_mfa_key_file nginx seals the secret (AES-256-GCM, "v1."
-- and base64url) before it gets here; without it the secret is stored as
-- is (base32).

SET client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- tables
-- ---------------------------------------------------------------------------

-- enabled_at NULL: set up but not confirmed yet (not asked at login).
-- failures: wrong codes given to confirm or disable (a signed-in caller),
-- counted in a 15-minute window from the last one; 5 stop both for the
-- rest of the window (login has the account lockout instead).
CREATE TABLE tm.user_mfa (
  user_id     uuid PRIMARY KEY REFERENCES tm.users (id) ON DELETE CASCADE,
  totp_secret text NOT NULL
              CHECK (totp_secret ~ '^([A-Z2-7]{32}|v1\.[A-Za-z0-9_-]{80})$'),
  enabled_at  timestamptz,
  last_step   bigint NOT NULL DEFAULT 0,
  failures    int NOT NULL DEFAULT 0,
  failed_at   timestamptz,
  created_at  timestamptz NOT NULL DEFAULT tm.now_ms()
);

-- one-time recovery codes, SHA-256 hashes only; a used one is deleted
CREATE TABLE tm.mfa_recovery_codes (
  user_id   uuid NOT NULL REFERENCES tm.users (id) ON DELETE CASCADE,
  code_hash text NOT NULL CHECK (code_hash ~ '^[0-9a-f]{64}$'),
  PRIMARY KEY (user_id, code_hash)
);

-- password reset and magic link tokens, SHA-256 hashes only; a user has at
-- most one of each purpose (a newer one replaces it), used once.
CREATE TABLE tm.auth_tokens (
  token_hash text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  user_id    uuid NOT NULL REFERENCES tm.users (id) ON DELETE CASCADE,
  purpose    text NOT NULL CHECK (purpose IN ('password_reset', 'magic_link')),
  created_at timestamptz NOT NULL DEFAULT tm.now_ms(),
  expires_at timestamptz NOT NULL,
  UNIQUE (user_id, purpose)
);

-- Transactional outbox: emails to send, written in the transaction that
-- decides to send them.  A job system (not built yet) sends and marks them.
CREATE TABLE tm.outbox (
  id         uuid PRIMARY KEY DEFAULT tm.uuid_v7(),
  recipient  text NOT NULL CHECK (char_length(recipient) BETWEEN 3 AND 254),
  template   text NOT NULL CHECK (template IN ('password_reset', 'magic_link')),
  payload    jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT tm.now_ms(),
  sent_at    timestamptz
);
CREATE INDEX outbox_unsent_idx ON tm.outbox (created_at) WHERE sent_at IS NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON tm.user_mfa, tm.mfa_recovery_codes,
  tm.auth_tokens TO taskmgr_app;
GRANT SELECT, INSERT ON tm.outbox TO taskmgr_app;

-- ---------------------------------------------------------------------------
-- helpers
-- ---------------------------------------------------------------------------

CREATE FUNCTION tm.mfa_enabled(p_uid uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM tm.user_mfa m
                  WHERE m.user_id = p_uid AND m.enabled_at IS NOT NULL)
$$;

-- /v1/me now tells whether TOTP is on (same signature as version 2)
CREATE OR REPLACE FUNCTION tm.me_json(u tm.users) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(u.id, u.email, u.name, u.locale, u.timezone,
                         tm.mfa_enabled(u.id),
                         tm.ts(u.created_at), tm.ts(u.updated_at))::tm.me_out)
$$;

-- "<secret> <last step>" of an enabled second factor, or NULL
CREATE FUNCTION tm.mfa_meta(p_uid uuid) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT m.totp_secret || ' ' || m.last_step
    FROM tm.user_mfa m
   WHERE m.user_id = p_uid AND m.enabled_at IS NOT NULL
$$;

-- The second factor nginx checked: a TOTP time step (accepted only if later
-- than the last one used: a code works once) or a recovery code's hash
-- (deleted: it works once).  False when neither holds (or MFA is off and
-- something was given: nothing to check it against).
CREATE FUNCTION tm.mfa_use(p_uid uuid, p_step bigint, p_recovery_hash text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_n int;
BEGIN
  IF p_step IS NOT NULL THEN
    UPDATE tm.user_mfa SET last_step = p_step
     WHERE user_id = p_uid AND enabled_at IS NOT NULL AND last_step < p_step;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n = 1;
  END IF;
  IF p_recovery_hash IS NOT NULL THEN
    DELETE FROM tm.mfa_recovery_codes c
     WHERE c.user_id = p_uid AND c.code_hash = p_recovery_hash
       AND tm.mfa_enabled(p_uid);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n = 1;
  END IF;
  RETURN NOT tm.mfa_enabled(p_uid);
END
$$;

-- ---------------------------------------------------------------------------
-- login with a second factor
-- ---------------------------------------------------------------------------

-- As login_lookup; meta "<user id>" or, with TOTP on,
-- "<user id> <secret> <last step>".
CREATE FUNCTION tm_api.login_lookup_mfa(p_email text) RETURNS tm_api.result
LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT (200, u.password_hash,
             u.id::text || coalesce(' ' || tm.mfa_meta(u.id), ''))::tm_api.result
       FROM tm.users u WHERE lower(u.email) = lower(p_email)),
    tm_api.err(404, 'not_found', 'no such account'))
$$;

-- As session_create, after the second factor (see tm.mfa_use): a step
-- already used or an unknown recovery code is 401.
CREATE FUNCTION tm_api.session_create_mfa(p_uid uuid, p_step bigint,
                                          p_recovery_hash text,
                                          p_refresh_hash text,
                                          p_device text, p_ip text,
                                          p_ua text, p_ttl_s int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT tm.mfa_use(p_uid, p_step, p_recovery_hash) THEN
    RETURN tm_api.err(401, 'unauthorized',
                      'invalid email, password or code');
  END IF;
  RETURN tm_api.session_create(p_uid, p_refresh_hash, p_device, p_ip, p_ua,
                               p_ttl_s);
END
$$;

-- ---------------------------------------------------------------------------
-- TOTP set up, confirm, disable
-- ---------------------------------------------------------------------------

-- Stores a new secret (as nginx stores it), not asked at login until
-- confirmed.  200, meta: the email (for the otpauth URI nginx answers).
-- 409 when TOTP is already on.
CREATE FUNCTION tm_api.mfa_totp_setup(p_uid uuid, p_sid uuid, p_secret text)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
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
  IF tm.mfa_enabled(p_uid) THEN
    RETURN tm_api.err(409, 'conflict', 'TOTP is already enabled');
  END IF;
  INSERT INTO tm.user_mfa (user_id, totp_secret) VALUES (p_uid, p_secret)
  ON CONFLICT (user_id) DO UPDATE
     SET totp_secret = EXCLUDED.totp_secret, last_step = 0,
         created_at = tm.now_ms();
  RETURN (200, NULL, u.email)::tm_api.result;
END
$$;

-- 200 body: the secret; meta "pending" or "enabled <last step>".  409 when
-- there is no secret; 429, meta the seconds to wait, after 5 wrong codes.
CREATE FUNCTION tm_api.mfa_totp_state(p_uid uuid, p_sid uuid)
RETURNS tm_api.result
LANGUAGE plpgsql STABLE AS $$
DECLARE
  m tm.user_mfa;
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  SELECT * INTO m FROM tm.user_mfa WHERE user_id = p_uid;
  IF m.user_id IS NULL THEN
    RETURN tm_api.err(409, 'conflict', 'TOTP is not set up');
  END IF;
  IF m.failures >= 5 AND m.failed_at > now() - interval '15 minutes' THEN
    RETURN (429, 'rate_limited',
            greatest(1, ceil(extract(epoch FROM m.failed_at
                                    + interval '15 minutes' - now())))::int::text
           )::tm_api.result;
  END IF;
  RETURN (200, m.totp_secret,
          CASE WHEN m.enabled_at IS NULL THEN 'pending'
               ELSE 'enabled ' || m.last_step END)::tm_api.result;
END
$$;

-- Enables the pending secret p_secret (409 if it changed meanwhile or TOTP
-- is already on) with the step of the code just checked and the hashes of
-- the new recovery codes.  204.
CREATE FUNCTION tm_api.mfa_totp_enable(p_uid uuid, p_sid uuid, p_secret text,
                                       p_step bigint, p_hashes text)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_n int;
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  UPDATE tm.user_mfa SET enabled_at = tm.now_ms(), last_step = p_step,
                         failures = 0, failed_at = NULL
   WHERE user_id = p_uid AND totp_secret = p_secret AND enabled_at IS NULL;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  IF v_n <> 1 THEN
    RETURN tm_api.err(409, 'conflict',
                      'TOTP was set up or enabled meanwhile, try again');
  END IF;
  DELETE FROM tm.mfa_recovery_codes WHERE user_id = p_uid;
  INSERT INTO tm.mfa_recovery_codes (user_id, code_hash)
  SELECT p_uid, h FROM regexp_split_to_table(p_hashes, ' ') AS h
   LIMIT 20;
  RETURN (204, NULL, NULL)::tm_api.result;
END
$$;

-- A wrong code for confirm or disable: one more failure in the window.
CREATE FUNCTION tm.mfa_fail(p_uid uuid) RETURNS void
LANGUAGE sql AS $$
  UPDATE tm.user_mfa
     SET failures = CASE WHEN failed_at > now() - interval '15 minutes'
                         THEN failures + 1 ELSE 1 END,
         failed_at = now()
   WHERE user_id = p_uid
$$;

-- nginx found the code wrong: counted, 403.
CREATE FUNCTION tm_api.mfa_totp_failed(p_uid uuid, p_sid uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  PERFORM tm.mfa_fail(p_uid);
  RETURN tm_api.err(403, 'forbidden', 'the code is wrong or was used');
END
$$;

-- Turns TOTP off after a code (see tm.mfa_use); 403 when the code was
-- already used (counted as a failure).  204.
CREATE FUNCTION tm_api.mfa_totp_disable(p_uid uuid, p_sid uuid, p_step bigint,
                                        p_recovery_hash text)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT tm.session_live(p_uid, p_sid) THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  IF NOT tm.mfa_enabled(p_uid) THEN
    RETURN tm_api.err(409, 'conflict', 'TOTP is not enabled');
  END IF;
  IF NOT tm.mfa_use(p_uid, p_step, p_recovery_hash) THEN
    PERFORM tm.mfa_fail(p_uid);
    RETURN tm_api.err(403, 'forbidden', 'the code is wrong or was used');
  END IF;
  DELETE FROM tm.user_mfa WHERE user_id = p_uid;
  DELETE FROM tm.mfa_recovery_codes WHERE user_id = p_uid;
  RETURN (204, NULL, NULL)::tm_api.result;
END
$$;

-- ---------------------------------------------------------------------------
-- password reset and magic links
-- ---------------------------------------------------------------------------

-- Always 202 with the same body.  For a known email: a token (its hash
-- p_hash) replaces the user's previous one of this purpose, and the email
-- with the link p_link goes to the outbox in the same transaction; at most
-- once a minute per user and purpose (the previous email's link still
-- works), which bounds the outbox whatever the number of client addresses.
CREATE FUNCTION tm_api.auth_token_send(p_email text, p_purpose text,
                                       p_hash text, p_link text,
                                       p_ttl_s int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  u tm.users;
BEGIN
  SELECT * INTO u FROM tm.users WHERE lower(email) = lower(p_email);
  IF u.id IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM tm.auth_tokens t
                      WHERE t.user_id = u.id AND t.purpose = p_purpose
                        AND t.created_at > now() - interval '1 minute'
                        AND t.expires_at > now()) THEN
    INSERT INTO tm.auth_tokens (token_hash, user_id, purpose, expires_at)
    VALUES (p_hash, u.id, p_purpose, now() + make_interval(secs => p_ttl_s))
    ON CONFLICT (user_id, purpose) DO UPDATE
       SET token_hash = EXCLUDED.token_hash, created_at = tm.now_ms(),
           expires_at = EXCLUDED.expires_at;
    INSERT INTO tm.outbox (recipient, template, payload)
    VALUES (u.email, p_purpose,
            jsonb_build_object('link', p_link, 'name', u.name,
                               'expires_at',
                               tm.ts(now() + make_interval(secs => p_ttl_s))));
  END IF;
  RETURN (202, '{"status":"accepted"}', NULL)::tm_api.result;
END
$$;

-- A live token of p_purpose: 200 body the user's email, meta
-- "<user id>" or, with TOTP on, "<user id> <secret> <last step>".  401
-- when unknown, used, replaced or expired.
CREATE FUNCTION tm_api.auth_token_lookup(p_hash text, p_purpose text)
RETURNS tm_api.result
LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT (200, u.email,
             u.id::text || coalesce(' ' || tm.mfa_meta(u.id), ''))::tm_api.result
       FROM tm.auth_tokens t JOIN tm.users u ON u.id = t.user_id
      WHERE t.token_hash = p_hash AND t.purpose = p_purpose
        AND t.expires_at > now()),
    tm_api.err(401, 'unauthorized', 'the token is invalid or has expired'))
$$;

-- Uses up a live token: its user id, or NULL.
CREATE FUNCTION tm.auth_token_use(p_hash text, p_purpose text) RETURNS uuid
LANGUAGE sql AS $$
  DELETE FROM tm.auth_tokens
   WHERE token_hash = p_hash AND purpose = p_purpose AND expires_at > now()
  RETURNING user_id
$$;

-- Sets the password with a reset token and ends every session.  204,
-- meta: "<user id> <ended session ids>".
CREATE FUNCTION tm_api.password_reset(p_hash text, p_new_hash text)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_uid uuid;
BEGIN
  v_uid := tm.auth_token_use(p_hash, 'password_reset');
  IF v_uid IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized',
                      'the token is invalid or has expired');
  END IF;
  UPDATE tm.users SET password_hash = p_new_hash, updated_at = tm.now_ms()
   WHERE id = v_uid;
  RETURN (204, NULL,
          rtrim(v_uid || ' ' || tm.revoke_sessions(v_uid, NULL)))::tm_api.result;
END
$$;

-- A new session with a magic link token (and the second factor when TOTP
-- is on, see tm.mfa_use).  200 body: the user; meta "<user id> <session
-- id>".
CREATE FUNCTION tm_api.magic_link_consume(p_hash text, p_step bigint,
                                          p_recovery_hash text,
                                          p_refresh_hash text,
                                          p_device text, p_ip text,
                                          p_ua text, p_ttl_s int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_uid uuid;
BEGIN
  v_uid := tm.auth_token_use(p_hash, 'magic_link');
  IF v_uid IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized',
                      'the token is invalid or has expired');
  END IF;
  IF NOT tm.mfa_use(v_uid, p_step, p_recovery_hash) THEN
    -- the token stays usable with a right code
    RAISE EXCEPTION USING ERRCODE = 'TM401',
                          MESSAGE = 'invalid code';
  END IF;
  RETURN tm_api.session_create(v_uid, p_refresh_hash, p_device, p_ip, p_ua,
                               p_ttl_s);
EXCEPTION WHEN SQLSTATE 'TM401' THEN
  RETURN tm_api.err(401, 'unauthorized', 'invalid code');
END
$$;


-- ---------------------------------------------------------------------------
-- API keys
-- ---------------------------------------------------------------------------

-- A key acts for its creator in one workspace with a role no higher than
-- the creator's there (capped again at every use: a demoted creator's key
-- is demoted too).  Each key owns a row of tm.sessions with the same id
-- (api_key true, expiring with the key), so that every statement's session
-- check accepts it as it is; the session list, logout-all and password
-- changes leave those rows alone.  Only the SHA-256 of the key is stored;
-- prefix is its first characters, to recognise it in a list.
ALTER TABLE tm.sessions ADD COLUMN api_key boolean NOT NULL DEFAULT false;

CREATE TABLE tm.api_keys (
  id           uuid PRIMARY KEY REFERENCES tm.sessions (id) ON DELETE CASCADE,
  user_id      uuid NOT NULL REFERENCES tm.users (id) ON DELETE CASCADE,
  workspace_id uuid NOT NULL REFERENCES tm.workspaces (id) ON DELETE CASCADE,
  name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
  key_hash     text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  prefix       text NOT NULL CHECK (char_length(prefix) <= 16),
  created_at   timestamptz NOT NULL DEFAULT tm.now_ms(),
  expires_at   timestamptz,
  last_used_at timestamptz
);
CREATE INDEX api_keys_user_idx ON tm.api_keys (user_id, created_at DESC);

GRANT SELECT, INSERT, UPDATE, DELETE ON tm.api_keys TO taskmgr_app;
GRANT DELETE ON tm.sessions TO taskmgr_app;

CREATE FUNCTION tm.role_rank(p_role text) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE p_role WHEN 'owner' THEN 4 WHEN 'admin' THEN 3
                     WHEN 'member' THEN 2 WHEN 'viewer' THEN 1 ELSE 0 END
$$;

CREATE FUNCTION tm.is_api_key(p_sid uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT p_sid IS NOT NULL
     AND EXISTS (SELECT 1 FROM tm.sessions s WHERE s.id = p_sid AND s.api_key)
$$;

-- As version 1, and for an API key: '' (not a member) outside its
-- workspace, else the lower of the member's role and the key's.
CREATE OR REPLACE FUNCTION tm.enter(p_uid uuid, p_sid uuid, p_ws uuid)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
  k tm.api_keys;
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
  IF v_role IS NOT NULL AND p_sid IS NOT NULL THEN
    SELECT * INTO k FROM tm.api_keys WHERE id = p_sid;
    IF k.id IS NOT NULL THEN
      IF k.workspace_id <> p_ws THEN
        v_role := NULL;
      ELSIF tm.role_rank(k.role) < tm.role_rank(v_role) THEN
        v_role := k.role;
      END IF;
    END IF;
  END IF;
  RETURN coalesce(v_role, '');
END
$$;

-- the sessions of API keys are not logins: not listed, not ended with them
CREATE OR REPLACE FUNCTION tm_api.session_list(p_uid uuid, p_sid uuid)
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
             AND s.expires_at > now() AND NOT s.api_key
           ORDER BY s.created_at DESC, s.id DESC
           LIMIT 100) x;
  RETURN (200, v_body, NULL)::tm_api.result;
END
$$;

CREATE OR REPLACE FUNCTION tm_api.session_revoke(p_uid uuid, p_sid uuid,
                                                 p_target uuid)
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
     AND expires_at > now() AND NOT api_key
  RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    RETURN tm_api.err(404, 'not_found', 'no such session');
  END IF;
  RETURN (204, NULL, v_id::text)::tm_api.result;
END
$$;

CREATE OR REPLACE FUNCTION tm.revoke_sessions(p_uid uuid, p_keep uuid)
RETURNS text
LANGUAGE sql AS $$
  WITH ended AS (
    UPDATE tm.sessions SET revoked_at = now()
     WHERE user_id = p_uid AND revoked_at IS NULL AND expires_at > now()
       AND (p_keep IS NULL OR id <> p_keep) AND NOT api_key
    RETURNING id, created_at)
  SELECT coalesce(string_agg(x.id::text, ' '), '')
    FROM (SELECT id FROM ended ORDER BY created_at DESC, id DESC LIMIT 500) x
$$;

CREATE TYPE tm.api_key_out AS (
  id uuid, name text, workspace_id uuid, role text, prefix text,
  created_at text, expires_at text, last_used_at text);

CREATE FUNCTION tm.api_key_json(k tm.api_keys) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(k.id, k.name, k.workspace_id, k.role, k.prefix,
                         tm.ts(k.created_at), tm.ts(k.expires_at),
                         tm.ts(k.last_used_at))::tm.api_key_out)
$$;

-- account operations refuse API keys (nginx refuses them first)
CREATE FUNCTION tm.account_session(p_uid uuid, p_sid uuid) RETURNS tm_api.result
LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN tm.is_api_key(p_sid) THEN
      tm_api.err(403, 'forbidden', 'an API key cannot manage API keys')
    WHEN NOT tm.session_live(p_uid, p_sid) THEN
      tm_api.err(401, 'unauthorized', 'session has ended')
  END
$$;

-- 201 body: the key without its secret (nginx adds it), meta: its id.
-- 404 for a workspace the caller is not a member of, 403 for a role above
-- the caller's there, 422 for a past expires_at, 409 past 100 keys.
CREATE FUNCTION tm_api.api_key_create(p_uid uuid, p_sid uuid, p_name text,
                                      p_ws uuid, p_role text,
                                      p_expires timestamptz, p_hash text,
                                      p_prefix text)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_err tm_api.result;
  v_role text;
  v_id uuid;
  k tm.api_keys;
BEGIN
  v_err := tm.account_session(p_uid, p_sid);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  v_role := tm.enter(p_uid, p_sid, p_ws);
  IF coalesce(v_role, '') = '' THEN
    RETURN tm_api.err(404, 'not_found', 'workspace not found');
  END IF;
  IF tm.role_rank(p_role) > tm.role_rank(v_role) THEN
    RETURN tm_api.err(403, 'forbidden',
                      'the key''s role is above yours in the workspace');
  END IF;
  IF p_expires IS NOT NULL AND p_expires <= now() THEN
    RETURN tm_api.err(422, 'validation_failed',
                      'expires_at must be in the future');
  END IF;
  PERFORM 1 FROM tm.users WHERE id = p_uid FOR UPDATE;
  IF (SELECT count(*) FROM tm.api_keys WHERE user_id = p_uid) >= 100 THEN
    RETURN tm_api.err(409, 'conflict', 'at most 100 API keys per user');
  END IF;
  INSERT INTO tm.sessions (user_id, device_name, expires_at, api_key)
  VALUES (p_uid, left('API key: ' || p_name, 200),
          coalesce(p_expires, 'infinity'), true)
  RETURNING id INTO v_id;
  INSERT INTO tm.api_keys (id, user_id, workspace_id, name, role, key_hash,
                           prefix, expires_at)
  VALUES (v_id, p_uid, p_ws, p_name, p_role, p_hash, p_prefix,
          date_trunc('milliseconds', p_expires))
  RETURNING * INTO k;
  RETURN (201, tm.api_key_json(k)::text, k.id::text)::tm_api.result;
END
$$;

-- 200 {"data":[…]}: the caller's keys (expired ones too), newest first.
CREATE FUNCTION tm_api.api_key_list(p_uid uuid, p_sid uuid)
RETURNS tm_api.result
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_err tm_api.result;
  v_body text;
BEGIN
  v_err := tm.account_session(p_uid, p_sid);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  SELECT '{"data":' || coalesce(json_agg(tm.api_key_json(k)
                                         ORDER BY k.created_at DESC, k.id DESC),
                               '[]') || '}'
    INTO v_body
    FROM (SELECT * FROM tm.api_keys WHERE user_id = p_uid
           ORDER BY created_at DESC, id DESC LIMIT 100) k;
  RETURN (200, v_body, NULL)::tm_api.result;
END
$$;

-- 204 (the key's session row goes, and the key with it); 404 when p_id is
-- not a key of the caller.
CREATE FUNCTION tm_api.api_key_delete(p_uid uuid, p_sid uuid, p_id uuid)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_err tm_api.result;
  v_n int;
BEGIN
  v_err := tm.account_session(p_uid, p_sid);
  IF v_err IS NOT NULL THEN
    RETURN v_err;
  END IF;
  DELETE FROM tm.sessions
   WHERE id = p_id AND user_id = p_uid AND api_key;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  IF v_n = 0 THEN
    RETURN tm_api.err(404, 'not_found', 'no such API key');
  END IF;
  RETURN (204, NULL, NULL)::tm_api.result;
END
$$;

-- The access phase's lookup of a key by its hash: 200, meta "<key id>
-- <user id> <workspace id> <role>"; 401 when unknown or expired.
-- last_used_at moves at most once a minute.
CREATE FUNCTION tm_api.api_key_auth(p_hash text) RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  k tm.api_keys;
BEGIN
  SELECT * INTO k FROM tm.api_keys
   WHERE key_hash = p_hash AND (expires_at IS NULL OR expires_at > now());
  IF k.id IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized', 'invalid API key');
  END IF;
  IF k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute'
  THEN
    UPDATE tm.api_keys SET last_used_at = tm.now_ms()
     WHERE id = k.id
       AND (last_used_at IS NULL
            OR last_used_at < now() - interval '1 minute');
  END IF;
  RETURN (200, NULL, k.id || ' ' || k.user_id || ' ' || k.workspace_id
                     || ' ' || k.role)::tm_api.result;
END
$$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tm, tm_api TO taskmgr_app;
