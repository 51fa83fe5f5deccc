-- The most expensive task of a day is keyed by the day the task was completed (the business
-- date of tasks.completed), so each task keeps its reward until its completion is known too.
-- day_top_tasks rows written before this migration are keyed by the reward's billing date:
-- `ates replay analytics --from-start` rebuilds them by completion date.
ALTER TABLE tasks ADD COLUMN reward bigint;
