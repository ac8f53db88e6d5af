-- One tenant with 1,000,000 tasks for bench/list-1m.sh (bench/seed-1m.sh runs it).
--
-- Run as a superuser on a migrated database (row-level security is bypassed).  Rerunnable: it
-- deletes its own workspace and users first.  Deterministic ids:
--   user n (0..20)     = md5('1m-user:' || n)::uuid   (user 0 owns the workspace, 1..20 are members)
--   workspace          = md5('1m-ws')::uuid
--   project k (1..20)  = md5('1m-project:' || k)::uuid
-- Shape: status todo 40% / in_progress 20% / done 35% / archived 5%; priority 0..4 at
-- 30/25/25/15/5%; an assignee on 75%, a project on 70%, a due date on 40% (30 days ago .. 180
-- days ahead); 0..3 of 12 labels; 2% soft-deleted; created_at over the last two years at ms
-- precision; titles of 3..7 words and descriptions of 0..40 words from an 80-word vocabulary, and
-- one of 8 rare words in 0.1% of the titles (for search benchmarks with few matches).

\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET maintenance_work_mem = '512MB';
SET synchronous_commit = off;
SELECT setseed(0.42);

DELETE FROM tm.tasks WHERE workspace_id = md5('1m-ws')::uuid;
DELETE FROM tm.projects WHERE workspace_id = md5('1m-ws')::uuid;
DELETE FROM tm.workspaces WHERE id = md5('1m-ws')::uuid;
DELETE FROM tm.users WHERE id IN (SELECT md5('1m-user:' || n)::uuid FROM generate_series(0, 20) n);

INSERT INTO tm.users (id, email, password_hash, name)
SELECT md5('1m-user:' || n)::uuid, 'bench-1m-' || n || '@example.test', '!', 'Bench ' || n
  FROM generate_series(0, 20) n;

INSERT INTO tm.workspaces (id, name, created_by)
VALUES (md5('1m-ws')::uuid, 'one million', md5('1m-user:0')::uuid);

INSERT INTO tm.workspace_members (workspace_id, user_id, role)
SELECT md5('1m-ws')::uuid, md5('1m-user:' || n)::uuid,
       CASE WHEN n = 0 THEN 'owner' ELSE 'member' END
  FROM generate_series(0, 20) n;

INSERT INTO tm.projects (workspace_id, id, name, created_by)
SELECT md5('1m-ws')::uuid, md5('1m-project:' || k)::uuid, 'Project ' || k, md5('1m-user:0')::uuid
  FROM generate_series(1, 20) k;

CREATE TEMP TABLE vocab AS
SELECT ARRAY['api', 'billing', 'bug', 'cache', 'client', 'customer', 'dashboard', 'database',
             'deploy', 'design', 'docs', 'email', 'error', 'export', 'feature', 'fix', 'flow',
             'form', 'import', 'invoice', 'issue', 'layout', 'login', 'logs', 'metrics',
             'migration', 'mobile', 'monitor', 'notification', 'onboarding', 'page', 'payment',
             'performance', 'plan', 'query', 'queue', 'refactor', 'release', 'report', 'review',
             'search', 'security', 'server', 'settings', 'signup', 'slow', 'sprint', 'support',
             'sync', 'task', 'team', 'test', 'ticket', 'timeout', 'update', 'upload', 'user',
             'webhook', 'widget', 'workflow', 'add', 'remove', 'improve', 'check', 'clean',
             'write', 'review', 'draft', 'publish', 'plan', 'meeting', 'follow', 'prepare',
             'analyse', 'investigate', 'schedule', 'backup', 'restore', 'upgrade', 'audit']
       AS w,
       ARRAY['zeppelin', 'quokka', 'marzipan', 'xylophone', 'gazebo', 'kumquat', 'yodel',
             'jacquard'] AS rare,
       ARRAY['bug', 'feature', 'ui', 'backend', 'ops', 'docs', 'security', 'perf', 'infra',
             'design', 'research', 'chore'] AS labels;

INSERT INTO tm.tasks (workspace_id, id, project_id, title, description, status, priority,
                      due_at, assignee_id, labels, created_by, created_at, updated_at,
                      completed_at, deleted_at)
SELECT md5('1m-ws')::uuid,
       gen_random_uuid(),
       CASE WHEN r.p < 0.7 THEN md5('1m-project:' || (1 + (g % 20)))::uuid END,
       (SELECT string_agg(v.w[1 + floor(random() * 80)::int + 0 * i], ' ')
          FROM generate_series(1, 3 + (g % 5)) i)
         || CASE WHEN g % 1000 = 7 THEN ' ' || v.rare[1 + (g / 1000) % 8] ELSE '' END,
       coalesce((SELECT string_agg(v.w[1 + floor(random() * 80)::int + 0 * i], ' ')
                   FROM generate_series(1, (g * 7) % 41) i), ''),
       CASE WHEN r.s < 0.40 THEN 'todo' WHEN r.s < 0.60 THEN 'in_progress'
            WHEN r.s < 0.95 THEN 'done' ELSE 'archived' END,
       CASE WHEN r.q < 0.30 THEN 0 WHEN r.q < 0.55 THEN 1 WHEN r.q < 0.80 THEN 2
            WHEN r.q < 0.95 THEN 3 ELSE 4 END,
       CASE WHEN r.d < 0.40
            THEN date_trunc('minute', now()) + ((r.d * 525 - 30) * interval '1 day') END,
       CASE WHEN r.a < 0.75 THEN md5('1m-user:' || (1 + (g % 20)))::uuid END,
       (SELECT coalesce(array_agg(DISTINCT v.labels[1 + floor(random() * 12)::int + 0 * i]),
                        '{}')
          FROM generate_series(1, (g * 13) % 4) i),
       md5('1m-user:0')::uuid,
       r.c,
       least(r.c + r.u * interval '30 days', date_trunc('milliseconds', now())),
       CASE WHEN r.s >= 0.60 AND r.s < 0.95 THEN r.c + r.u * interval '20 days' END,
       CASE WHEN r.x < 0.02 THEN r.c + interval '1 day' END
  FROM generate_series(1, 1000000) g
 CROSS JOIN vocab v
 CROSS JOIN LATERAL (
       SELECT random() AS p, random() AS s, random() AS q, random() AS d, random() AS a,
              random() AS u, random() AS x,
              date_trunc('milliseconds', now() - random() * interval '730 days') AS c
        WHERE g > 0) r;

VACUUM (ANALYZE) tm.tasks;
ANALYZE tm.users;
ANALYZE tm.workspace_members;

SELECT count(*) AS tasks,
       count(*) FILTER (WHERE deleted_at IS NULL) AS live,
       count(*) FILTER (WHERE status = 'todo') AS todo,
       count(*) FILTER (WHERE due_at IS NOT NULL) AS with_due,
       count(*) FILTER (WHERE 'bug' = ANY (labels)) AS label_bug,
       count(*) FILTER (WHERE search @@ websearch_to_tsquery('english', 'zeppelin')) AS zeppelin
  FROM tm.tasks WHERE workspace_id = md5('1m-ws')::uuid;
