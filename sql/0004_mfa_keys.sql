-- taskmgr schema, version 4: second factors (TOTP, recovery codes),
-- password reset and magic links (single-use tokens, an email outbox).
--
-- TOTP codes are checked in nginx (RFC 6238 needs the secret and the
-- clock); PostgreSQL keeps the secret, the last time step used (a code is
-- accepted only for a later step: no replay) and the recovery codes' hashes.
-- The secret is stored as is (base32): whoever reads tm.user_mfa can make
-- codes, as with any TOTP server that does not wrap it in a key.

SET client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- tables
-- ---------------------------------------------------------------------------

-- enabled_at NULL: set up but not confirmed yet (not asked at login).
CREATE TABLE tm.user_mfa (
  user_id     uuid PRIMARY KEY REFERENCES tm.users (id) ON DELETE CASCADE,
  totp_secret text NOT NULL CHECK (totp_secret ~ '^[A-Z2-7]{32}$'),
  enabled_at  timestamptz,
  last_step   bigint NOT NULL DEFAULT 0,
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

-- RFC 3986 percent-encoding of everything but the unreserved characters
CREATE FUNCTION tm.uri_escape(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(string_agg(
           CASE WHEN c ~ '^[A-Za-z0-9._~-]$' THEN c
                ELSE upper(regexp_replace(encode(convert_to(c, 'UTF8'), 'hex'),
                                          '(..)', '%\1', 'g')) END,
           '' ORDER BY n), '')
    FROM regexp_split_to_table(s, '') WITH ORDINALITY AS x(c, n)
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

-- 200 {secret, otpauth_uri}: a new secret, not asked at login until
-- confirmed.  409 when TOTP is already on.
CREATE FUNCTION tm_api.mfa_totp_setup(p_uid uuid, p_sid uuid, p_secret text,
                                      p_issuer text)
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
  RETURN (200,
          json_build_object(
            'secret', p_secret,
            'otpauth_uri',
            'otpauth://totp/' || tm.uri_escape(p_issuer) || ':'
              || tm.uri_escape(u.email) || '?secret=' || p_secret
              || '&issuer=' || tm.uri_escape(p_issuer)
              || '&algorithm=SHA1&digits=6&period=30')::text,
          NULL)::tm_api.result;
END
$$;

-- 200 body: the secret; meta "pending" or "enabled <last step>".  409 when
-- there is no secret.
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
  UPDATE tm.user_mfa SET enabled_at = tm.now_ms(), last_step = p_step
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

-- Turns TOTP off after a code (see tm.mfa_use); 403 when the code was
-- already used.  204.
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
-- with the link p_link goes to the outbox in the same transaction.
CREATE FUNCTION tm_api.auth_token_send(p_email text, p_purpose text,
                                       p_hash text, p_link text,
                                       p_ttl_s int)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  u tm.users;
BEGIN
  SELECT * INTO u FROM tm.users WHERE lower(email) = lower(p_email);
  IF u.id IS NOT NULL THEN
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

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tm, tm_api TO taskmgr_app;
