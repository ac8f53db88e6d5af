-- Offset pages through an assignee, a project or a label (bench/README.md
-- "One million tasks", session 7; docs/indexes.md).
--
-- An offset page reads the ids of its rows in the sort's index, then those
-- rows (0011, 0013).  Where a filter is in no index of the sort, that cost
-- rows in proportion to the offset (the sort's index, a heap fetch per row
-- skipped, to test the filter) or to the filter's matches (all of them
-- fetched and sorted), whichever is less.  On the bench's 1,000,000-task
-- tenant, where an assignee or a project has ~37,000 tasks and a label
-- ~118,000: offset 9,950 of filter[assignee_id] by title 79-107 ms p50,
-- by due date 52-72; of filter[project_id] by title 105-123, by
-- -updated_at 91; of filter[label] 235-298; offset 950 of a project or a
-- label by title 52-79.
--
-- 1. The usual views of a task manager, someone's tasks and a project's
--    tasks, in the sorts that are not split (created_at, updated_at,
--    due_at, title), get an index each that starts with the filter: an
--    offset page is then one range of it, whatever its depth.  Someone's
--    tasks newest first already have tasks_assignee_list_idx.  Where no
--    task has an assignee or a project, none is indexed: the filters
--    test equality, which implies it.
-- 2. The indexes of those four sorts include the labels, so that the ids
--    of an offset page through a label filter (and the count of
--    X-Total-Count) are an index-only scan that tests the labels of each
--    entry, not a heap fetch.  Same names, rebuilt.
--
-- The sorts led by status or priority (a branch per value, ordered by id)
-- read the branch's index with the filter tested on the heap: offset 9,950
-- of an assignee with sort=-priority 26-29 ms p50, left so.
--
-- Builds seven indexes and rebuilds four under an ACCESS EXCLUSIVE lock:
-- every task read and write waits (~40 s for 1,000,000 tasks).  They make
-- each write of a task update seven more btree entries (bench/README.md).

SET client_min_messages = warning;

CREATE INDEX tasks_assignee_title_idx
  ON tm.tasks (workspace_id, assignee_id, title, id)
  INCLUDE (deleted_at, status, priority) WHERE assignee_id IS NOT NULL;

CREATE INDEX tasks_assignee_due_idx
  ON tm.tasks (workspace_id, assignee_id, due_at, id)
  INCLUDE (deleted_at, status, priority) WHERE assignee_id IS NOT NULL;

CREATE INDEX tasks_assignee_updated_idx
  ON tm.tasks (workspace_id, assignee_id, updated_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority) WHERE assignee_id IS NOT NULL;

CREATE INDEX tasks_project_list_idx
  ON tm.tasks (workspace_id, project_id, created_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority) WHERE project_id IS NOT NULL;

CREATE INDEX tasks_project_title_idx
  ON tm.tasks (workspace_id, project_id, title, id)
  INCLUDE (deleted_at, status, priority) WHERE project_id IS NOT NULL;

CREATE INDEX tasks_project_due_idx
  ON tm.tasks (workspace_id, project_id, due_at, id)
  INCLUDE (deleted_at, status, priority) WHERE project_id IS NOT NULL;

CREATE INDEX tasks_project_updated_idx
  ON tm.tasks (workspace_id, project_id, updated_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority) WHERE project_id IS NOT NULL;

DROP INDEX tm.tasks_list_idx;
CREATE INDEX tasks_list_idx
  ON tm.tasks (workspace_id, created_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority, labels);

DROP INDEX tm.tasks_due_idx;
CREATE INDEX tasks_due_idx
  ON tm.tasks (workspace_id, due_at, id)
  INCLUDE (deleted_at, status, priority, labels);

DROP INDEX tm.tasks_updated_idx;
CREATE INDEX tasks_updated_idx
  ON tm.tasks (workspace_id, updated_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority, labels);

DROP INDEX tm.tasks_title_idx;
CREATE INDEX tasks_title_idx
  ON tm.tasks (workspace_id, title, id)
  INCLUDE (deleted_at, status, priority, labels);
