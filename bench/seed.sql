-- Seed data for `bench/run.sh`: the shape of the peer harness's seed.sql
-- (../shared/bench/seed.sql, schema "peer") in our schema "tm" (sql/0001_init.sql).
--
--   psql -X -v ON_ERROR_STOP=1 -h <pgsock> -p <port> -U postgres -d taskmgr -f bench/seed.sql
--
-- Run it as a superuser (row-level security is bypassed) on a migrated database that holds a
-- *template user*: one account registered through POST /v1/auth/register (email in the psql
-- variable template_email, default bench-template@example.test). Its argon2id password_hash is
-- given to every seeded user, so they all log in with the template's password. When no template
-- user exists, the hash of seeded user 1 is reused (a rerun on already-seeded data).
--
-- Rerunnable: it empties every tm table (TRUNCATE, the template user included) and reloads.
-- Takes a few seconds.
--
-- Shape (identical to the peers'): 1,000 users, 200 workspaces with 5 members each (owner,
-- admin, member, member, viewer), 5 projects per workspace, 100,000 tasks (500 per workspace,
-- ~2% soft-deleted), titles 20-60 characters, descriptions 0-400 characters, 0-3 labels, due
-- dates on ~40%, assignees on ~75%, project on ~70%, created_at spread over the year before
-- now() - 1 hour at millisecond precision.
--
-- The random generator is seeded and the statements that draw random numbers are the peers'
-- own, in the same order, so titles, descriptions, labels and timestamps match the peers' data.
--
-- Deterministic ids:  user n (1..1000)          = md5('user:' || n)::uuid
--                     workspace w (1..200)      = md5('ws:' || w)::uuid
--                     members of w              = users (w-1)*5+1 .. (w-1)*5+5, roles as above
--                     project k (1..5) of w     = md5('project:' || w || ':' || k)::uuid
--                     task g (1..100000)        = md5('task:' || g)::uuid, in workspace (g-1)/500+1
-- (the peers' task ids are random; users, workspaces and projects have the same ids there).

\set ON_ERROR_STOP on
SET client_min_messages = warning;

\if :{?template_email}
\else
\set template_email 'bench-template@example.test'
\endif

-- The shared password hash: the template user's, else (rerun) seeded user 1's.
SELECT coalesce(
         (SELECT password_hash FROM tm.users WHERE lower(email) = lower(:'template_email')),
         (SELECT password_hash FROM tm.users WHERE id = md5('user:1')::uuid)) AS pw_hash,
       (SELECT count(*) FROM tm.users WHERE lower(email) = lower(:'template_email')
                                         OR id = md5('user:1')::uuid) > 0 AS have_hash
\gset
\if :have_hash
\else
\echo 'seed.sql: no template user' :'template_email' 'and no seeded user 1: register one through POST /v1/auth/register first'
SELECT 1 / 0 AS no_template_user;
\endif
SELECT :'pw_hash' LIKE '$argon2id$%' AS hash_ok \gset
\if :hash_ok
\else
\echo 'seed.sql: the template password_hash is not an argon2id hash'
SELECT 1 / 0 AS bad_template_hash;
\endif

SELECT setseed(0.4242) \g /dev/null

-- CASCADE: tables later migrations add that refer to these are emptied too.
TRUNCATE tm.refresh_tokens, tm.sessions, tm.tasks, tm.projects, tm.workspace_members,
         tm.workspaces, tm.users CASCADE;

-- ---------------------------------------------------------------------------------------------
-- Vocabulary
-- ---------------------------------------------------------------------------------------------
CREATE TEMP TABLE vocab AS
SELECT
  string_to_array(
    'Fix Add Update Investigate Refactor Remove Document Migrate Review Implement Test Design '
    'Deploy Optimize Support Clean-up Audit Prototype Backport Upgrade Split Merge Rename Automate '
    'Monitor Benchmark Validate Localize Archive Expose Cache Throttle Retry Paginate Index', ' ') AS verbs,
  string_to_array(
    'login page dashboard sidebar onboarding flow checkout invoice export import CSV report chart '
    'API endpoint webhook retry queue worker cron job email template notification settings profile '
    'avatar upload attachment search filter sort pagination cursor token session refresh password '
    'reset MFA TOTP SSO SAML OAuth callback redirect loop timeout error handling logging metrics '
    'tracing alert on-call runbook database migration index query plan cache invalidation Redis '
    'Postgres replica backup restore snapshot release pipeline CI build flaky test coverage lint '
    'types schema validation form input modal dialog tooltip dark mode theme accessibility keyboard '
    'shortcut mobile layout tablet Safari Firefox Chrome iOS Android push deep link analytics event '
    'funnel billing plan trial quota limit usage seat invite member role permission audit trail '
    'activity feed comment mention reaction thread draft autosave offline sync conflict merge '
    'duplicate label tag project milestone roadmap sprint backlog estimate priority status assignee '
    'due date reminder calendar timezone locale translation copy docs README changelog customer '
    'feedback support ticket bug crash memory leak latency spike regression performance budget '
    'bundle size lazy loading image CDN TLS certificate DNS load balancer rate limiter gateway '
    'service container Kubernetes deployment rollout canary feature flag experiment config secret '
    'rotation key vault permissions GDPR export deletion retention policy', ' ') AS nouns,
  string_to_array(
    'the a our new old broken slow legacy shared internal public admin user team workspace nightly '
    'weekly mobile web desktop billing signup partner enterprise free paid missing duplicate stale '
    'inconsistent intermittent critical minor', ' ') AS adjs,
  string_to_array(
    'when for after before in on with during without because so that and but while if until', ' ') AS links,
  string_to_array(
    'bug feature frontend backend urgent design docs tech-debt security performance mobile infra '
    'customer qa ux api billing', ' ') AS labels,
  string_to_array(
    'Ada Alan Grace Linus Margaret Ken Dennis Barbara Edsger Donald Frances John Radia Tim Vint '
    'Sophie Hedy Annie Katherine Mary Guido Bjarne James Yukihiro Rob Brian Niklaus Leslie Anita '
    'Shafi Whitfield Martin Fran Jean Adele Lynn Carol Joan Ivan Sam', ' ') AS firsts,
  string_to_array(
    'Lovelace Turing Hopper Torvalds Hamilton Thompson Ritchie Liskov Dijkstra Knuth Allen McCarthy '
    'Perlman Berners-Lee Cerf Wilson Lamarr Easley Johnson Keller Rossum Stroustrup Gosling '
    'Matsumoto Pike Kernighan Wirth Lamport Borg Goldwasser Diffie Fowler Bilas Sammet Goldberg '
    'Conway Shaw Clarke Sutherland Gray', ' ') AS lasts;

-- 5,000 sentences of 4..14 words, used to build descriptions.
CREATE TEMP TABLE sentence AS
SELECT g AS i,
       upper(left(t, 1)) || substr(t, 2) || '.' AS s
FROM (
  SELECT g,
         array_to_string(ARRAY(
           SELECT CASE
                    WHEN k % 4 = 0 THEN v.links[1 + floor(random() * array_length(v.links, 1))::int]
                    WHEN k % 3 = 0 THEN v.adjs[1 + floor(random() * array_length(v.adjs, 1))::int]
                    WHEN k = 1 AND random() < 0.5 THEN v.verbs[1 + floor(random() * array_length(v.verbs, 1))::int]
                    ELSE v.nouns[1 + floor(random() * array_length(v.nouns, 1))::int]
                  END
           FROM generate_series(1, 4 + (g * 7 + g / 3) % 11) AS k), ' ') AS t
  FROM generate_series(1, 5000) AS g, vocab v
) q;
ANALYZE sentence;

-- 20,000 titles of 20..60 characters: a verb and then nouns/adjectives, cut at a word boundary.
CREATE TEMP TABLE title AS
SELECT i,
       CASE WHEN char_length(cut) >= 20 THEN cut ELSE rtrim(left(substring(t FROM '^.{19}\s*\S+'), 60)) END AS t
FROM (
  SELECT i, t, l,
         rtrim(CASE WHEN substr(t, l + 1, 1) IN ('', ' ') THEN left(t, l)
                    ELSE regexp_replace(left(t, l + 1), '\s+\S*$', '') END) AS cut
  FROM (
    SELECT g AS i,
           20 + floor(random() * 41)::int AS l,
           v.verbs[1 + floor(random() * array_length(v.verbs, 1))::int] || ' ' ||
           array_to_string(ARRAY(
             SELECT CASE WHEN k % 3 = 0 THEN v.adjs[1 + floor(random() * array_length(v.adjs, 1))::int]
                         WHEN k % 5 = 0 THEN v.links[1 + floor(random() * array_length(v.links, 1))::int]
                         ELSE v.nouns[1 + floor(random() * array_length(v.nouns, 1))::int] END
             FROM generate_series(1, 12 + g % 2) AS k), ' ') AS t
    FROM generate_series(1, 20000) AS g, vocab v
  ) a
) b;
ANALYZE title;

-- ---------------------------------------------------------------------------------------------
-- Users, workspaces, members, projects
-- ---------------------------------------------------------------------------------------------
INSERT INTO tm.users (id, email, password_hash, name)
SELECT md5('user:' || n)::uuid,
       lower(f) || '.' || lower(l) || '.' || n || '@example.test',
       :'pw_hash',
       f || ' ' || l
FROM (
  SELECT n,
         v.firsts[1 + (n * 7) % array_length(v.firsts, 1)] AS f,
         v.lasts[1 + (n * 13 + n / 40) % array_length(v.lasts, 1)] AS l
  FROM generate_series(1, 1000) AS n, vocab v
) u;

INSERT INTO tm.workspaces (id, name, personal, created_by)
SELECT md5('ws:' || w)::uuid,
       (ARRAY['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Stark', 'Wayne', 'Tyrell', 'Soylent', 'Cyberdyne'])[1 + w % 10]
         || ' ' || (ARRAY['Platform', 'Mobile', 'Growth', 'Infra', 'Design', 'Support', 'Data', 'Payments'])[1 + (w / 10) % 8]
         || ' ' || w,
       false,
       md5('user:' || ((w - 1) * 5 + 1))::uuid
FROM generate_series(1, 200) AS w;

INSERT INTO tm.workspace_members (workspace_id, user_id, role)
SELECT md5('ws:' || w)::uuid,
       md5('user:' || ((w - 1) * 5 + k + 1))::uuid,
       (ARRAY['owner', 'admin', 'member', 'member', 'viewer'])[k + 1]
FROM generate_series(1, 200) AS w, generate_series(0, 4) AS k;

-- The peers' tasks point at md5('project:' || w || ':' || k) without a projects table; ours
-- has a composite foreign key, so those projects exist here.
INSERT INTO tm.projects (workspace_id, id, name, created_by)
SELECT md5('ws:' || w)::uuid,
       md5('project:' || w || ':' || k)::uuid,
       (ARRAY['Roadmap', 'Platform', 'Mobile app', 'Website', 'Operations'])[k],
       md5('user:' || ((w - 1) * 5 + 1))::uuid
FROM generate_series(1, 200) AS w, generate_series(1, 5) AS k;

-- ---------------------------------------------------------------------------------------------
-- Tasks: 500 per workspace
-- ---------------------------------------------------------------------------------------------
CREATE TEMP TABLE task_rand AS
SELECT g,
       (g - 1) / 500 + 1                                  AS w,
       1 + floor(random() * 20000)::int                   AS ti,
       1 + floor(random() * 5000)::int AS s1, 1 + floor(random() * 5000)::int AS s2,
       1 + floor(random() * 5000)::int AS s3, 1 + floor(random() * 5000)::int AS s4,
       1 + floor(random() * 5000)::int AS s5, 1 + floor(random() * 5000)::int AS s6,
       1 + floor(random() * 5000)::int AS s7, 1 + floor(random() * 5000)::int AS s8,
       CASE WHEN random() < 0.15 THEN 0 ELSE 1 + floor(random() * 400)::int END AS dl,
       random() AS r_status, random() AS r_prio, random() AS r_due, random() AS r_assign,
       random() AS r_proj, random() AS r_del, random() AS r_lab,
       date_trunc('milliseconds', now() - interval '1 hour' - random() * interval '365 days') AS created_at,
       random() AS r_upd
FROM generate_series(1, 100000) AS g;
ANALYZE task_rand;

INSERT INTO tm.tasks (workspace_id, id, project_id, parent_id, title, description, status, priority,
                      due_at, assignee_id, labels, created_by, created_at, updated_at, completed_at,
                      deleted_at, version)
SELECT md5('ws:' || r.w)::uuid,
       md5('task:' || r.g)::uuid,
       CASE WHEN r.r_proj < 0.7 THEN md5('project:' || r.w || ':' || (1 + floor(r.r_proj * 10)::int % 5))::uuid END,
       NULL,
       t.t,
       d.descr,
       r.status,
       CASE WHEN r.r_prio < 0.30 THEN 0 WHEN r.r_prio < 0.55 THEN 1 WHEN r.r_prio < 0.80 THEN 2
            WHEN r.r_prio < 0.95 THEN 3 ELSE 4 END,
       CASE WHEN r.r_due < 0.4 THEN r.created_at + (1 + floor(r.r_due * 150)::int) * interval '1 day' END,
       CASE WHEN r.r_assign < 0.75 THEN md5('user:' || ((r.w - 1) * 5 + 1 + floor(r.r_assign * 1000)::int % 4))::uuid END,
       ARRAY(SELECT DISTINCT v.labels[1 + floor(random() * array_length(v.labels, 1))::int]
             FROM vocab v, generate_series(1, floor(r.r_lab * 4)::int) AS k),
       md5('user:' || ((r.w - 1) * 5 + 1 + r.g % 4))::uuid,
       r.created_at,
       r.updated_at,
       CASE WHEN r.status = 'done' THEN r.updated_at END,
       CASE WHEN r.r_del < 0.02 THEN r.updated_at END,
       1 + floor(r.r_upd * 5)::int
FROM (
  SELECT tr.*,
         CASE WHEN r_status < 0.35 THEN 'todo' WHEN r_status < 0.55 THEN 'in_progress'
              WHEN r_status < 0.90 THEN 'done' ELSE 'archived' END AS status,
         least(date_trunc('milliseconds', created_at + r_upd * interval '30 days'),
               date_trunc('milliseconds', now() - interval '1 hour')) AS updated_at
  FROM task_rand tr
) r
JOIN title t ON t.i = r.ti
JOIN (
  SELECT q.g,
         CASE WHEN q.dl = 0 THEN ''
              WHEN substr(q.full_t, q.dl + 1, 1) IN ('', ' ') THEN rtrim(left(q.full_t, q.dl))
              WHEN position(' ' IN left(q.full_t, q.dl)) = 0 THEN left(q.full_t, q.dl)
              ELSE regexp_replace(left(q.full_t, q.dl + 1), '\s+\S*$', '') END AS descr
  FROM (
    SELECT tr.g, tr.dl, concat_ws(' ', a.s, b.s, c.s, e.s, f.s, h.s, j.s, m.s) AS full_t
    FROM task_rand tr
    JOIN sentence a ON a.i = tr.s1 JOIN sentence b ON b.i = tr.s2
    JOIN sentence c ON c.i = tr.s3 JOIN sentence e ON e.i = tr.s4
    JOIN sentence f ON f.i = tr.s5 JOIN sentence h ON h.i = tr.s6
    JOIN sentence j ON j.i = tr.s7 JOIN sentence m ON m.i = tr.s8
  ) q
) d ON d.g = r.g;

VACUUM (ANALYZE) tm.users;
VACUUM (ANALYZE) tm.workspaces;
VACUUM (ANALYZE) tm.workspace_members;
VACUUM (ANALYZE) tm.projects;
VACUUM (ANALYZE) tm.tasks;
VACUUM (ANALYZE) tm.sessions;
VACUUM (ANALYZE) tm.refresh_tokens;

SELECT (SELECT count(*) FROM tm.users) AS users,
       (SELECT count(*) FROM tm.workspaces) AS workspaces,
       (SELECT count(*) FROM tm.workspace_members) AS members,
       (SELECT count(*) FROM tm.projects) AS projects,
       (SELECT count(*) FROM tm.tasks) AS tasks,
       (SELECT count(*) FROM tm.tasks WHERE deleted_at IS NOT NULL) AS soft_deleted,
       (SELECT min(char_length(title)) || '..' || max(char_length(title)) FROM tm.tasks) AS title_len,
       (SELECT min(char_length(description)) || '..' || max(char_length(description)) || ' avg '
               || round(avg(char_length(description))) FROM tm.tasks) AS descr_len;
