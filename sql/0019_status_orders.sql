-- Offset pages through a status and another filter (bench/README.md "One
-- million tasks", session 9; docs/indexes.md).
--
-- 0015 gave an assignee's and a project's tasks an index in each order that
-- is not split, so that an offset page of them is one range at any depth.
-- A status had one in created_at order only (tasks_status_idx), so a
-- status with another filter in the other orders read the order's index
-- for every task, testing both filters on each entry: offset 9,950 of
-- filter[status]=todo&filter[label]=security by -updated_at (4.6% of the
-- bench's tasks) read 216,000 entries of tasks_updated_idx, 50 / 79 ms
-- (p50 / p99) after 0018, where its page alone took ~48 ms.  Read from an
-- index of the status in that order, it reads the todo tasks only (~40% of
-- the tasks): 87,000 entries, ~26 ms in psql.
--
-- The three orders that are not split and have no status index: updated_at
-- (clients that sync), due_at and title.  The same included columns as the
-- others (0015), so that a label, a priority or deleted_at is tested on the
-- entry.  On the bench's 1,000,000 tasks each is ~117 MB and builds in ~3 s
-- while task writes wait; every task write updates them.

CREATE INDEX tasks_status_updated_idx
  ON tm.tasks (workspace_id, status, updated_at DESC, id DESC)
  INCLUDE (deleted_at, priority, labels);

CREATE INDEX tasks_status_due_idx
  ON tm.tasks (workspace_id, status, due_at, id)
  INCLUDE (deleted_at, priority, labels);

CREATE INDEX tasks_status_title_idx
  ON tm.tasks (workspace_id, status, title, id)
  INCLUDE (deleted_at, priority, labels);
