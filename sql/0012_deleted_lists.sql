-- Lists with deleted=include|only from the list indexes (bench/README.md
-- "One million tasks", session 5; docs/indexes.md).
--
-- The indexes of the list sorts held live tasks only (WHERE deleted_at IS
-- NULL).  deleted=include had no index in any sort's order: on the bench's
-- 1,000,000-task tenant every page read and sorted the whole tenant (1.3 s
-- newest first, 1.9 s by due date, 1.4 s with filter[status]); and
-- deleted=only read every deleted task and sorted them (20,000 tasks: 43 ms
-- p50, 56 ms p99).
--
-- They now hold every task, with deleted_at as an included column (and
-- status and priority, where not keys: filters an index-only scan can test,
-- for the ids of an offset page and the probes of 0011): a list of live
-- tasks reads them as before and drops the few deleted entries it
-- meets (soft-deleted tasks are purged after taskmgr_task_purge_after, 30
-- days by default) without a heap fetch where the scan is index-only (the
-- counts of X-Total-Count); deleted=include reads them in the sort's order;
-- deleted=only too, or tasks_deleted_idx when deleted tasks are few (the
-- planner's choice, by the statistics of deleted_at).  The same names, so
-- the docs and plans keep theirs.
--
-- deleted=only with a search or a label filter reads no order (0011's
-- task_find): the GIN indexes below hold the deleted tasks' words and
-- labels, so the bitmap is of the deleted matches.  The GIN indexes of
-- every task would be ANDed with the deleted ones: "invoice" (in a quarter
-- of the bench's tasks) read 262,000 entries for 5,000 deleted matches, 76
-- ms p50.  They are small (2% of the tasks on the bench's tenant, as many
-- as the purge leaves) and only a soft delete, a restore or a purge writes
-- them.
--
-- Rebuilds nine indexes of tm.tasks and adds five (below), under an ACCESS
-- EXCLUSIVE lock: every task read and write waits (~30 s for 1,000,000
-- tasks).

SET client_min_messages = warning;

DROP INDEX tm.tasks_list_idx;
CREATE INDEX tasks_list_idx
  ON tm.tasks (workspace_id, created_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority);

DROP INDEX tm.tasks_status_idx;
CREATE INDEX tasks_status_idx
  ON tm.tasks (workspace_id, status, created_at DESC, id DESC)
  INCLUDE (deleted_at, priority);

DROP INDEX tm.tasks_assignee_list_idx;
CREATE INDEX tasks_assignee_list_idx
  ON tm.tasks (workspace_id, assignee_id, created_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority);

DROP INDEX tm.tasks_due_idx;
CREATE INDEX tasks_due_idx
  ON tm.tasks (workspace_id, due_at, id)
  INCLUDE (deleted_at, status, priority);

DROP INDEX tm.tasks_priority_idx;
CREATE INDEX tasks_priority_idx
  ON tm.tasks (workspace_id, priority DESC, due_at, id)
  INCLUDE (deleted_at, status);

DROP INDEX tm.tasks_updated_idx;
CREATE INDEX tasks_updated_idx
  ON tm.tasks (workspace_id, updated_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority);

DROP INDEX tm.tasks_title_idx;
CREATE INDEX tasks_title_idx
  ON tm.tasks (workspace_id, title, id)
  INCLUDE (deleted_at, status, priority);

DROP INDEX tm.tasks_status_priority_idx;
CREATE INDEX tasks_status_priority_idx
  ON tm.tasks (workspace_id, status, priority, id) INCLUDE (deleted_at);

CREATE INDEX tasks_deleted_search_idx ON tm.tasks USING gin (search)
  WHERE deleted_at IS NOT NULL;

CREATE INDEX tasks_deleted_labels_idx ON tm.tasks USING gin (labels)
  WHERE deleted_at IS NOT NULL;

-- filter[project_id] with filter[assignee_id] (someone's tasks in a
-- project): two filters that each leave ~3.5% of the bench's tasks, and
-- together often none.  The planner read the 35,000 tasks of the project
-- and tested the assignee on each (70 ms warm, 480 ms cold) rather than
-- AND the two indexes; with the assignee in this index it is one range.
DROP INDEX tm.tasks_project_idx;
CREATE INDEX tasks_project_idx
  ON tm.tasks (workspace_id, project_id, assignee_id)
  WHERE project_id IS NOT NULL;

-- A sort led by priority runs one branch per priority ordered by id (0009),
-- which read the primary key and skipped the other priorities: ~20 rows for
-- each of priority 4 on the bench's tenant.  With a filter that leaves 2%
-- of them (tasks updated in the last day, sort=-priority) that was 47,000
-- rows for a page (81 ms p50, 106 ms p99); with this index a branch is one
-- range: 4.5 / 8 ms (sort=-priority alone: 2.7 -> 0.9 ms p50).
CREATE INDEX tasks_priority_id_idx
  ON tm.tasks (workspace_id, priority, id) INCLUDE (deleted_at, status);

-- filter[completed_at] had no index: tasks completed in the last 7 days
-- under sort=title read the whole tenant (over 2 s on the bench's).
CREATE INDEX tasks_completed_idx
  ON tm.tasks (workspace_id, completed_at DESC) INCLUDE (deleted_at)
  WHERE completed_at IS NOT NULL;

-- Likewise a sort led by status (sort=status: a branch per status, by id):
-- an offset page 10,000 rows into it read ~66,000 rows of the primary key
-- (594 ms p50).
CREATE INDEX tasks_status_id_idx
  ON tm.tasks (workspace_id, status, id) INCLUDE (deleted_at, priority);
