-- The admin dashboards' read models, built only from events. Every table is partitioned by
-- projection generation, so a rebuild fills fresh partitions and swaps them in.

-- Tasks as the dashboards name them.
CREATE TABLE tasks (
    generation   bigint NOT NULL,
    task_id      uuid   NOT NULL,
    title        text,
    jira_id      text,
    completed_at timestamptz,
    PRIMARY KEY (generation, task_id)
) PARTITION BY LIST (generation);

-- Per billing day: money moved (as posted, signed) and the change in negative popugs.
CREATE TABLE days (
    generation         bigint NOT NULL,
    day                date   NOT NULL,
    assign_fees        bigint NOT NULL DEFAULT 0,
    completion_rewards bigint NOT NULL DEFAULT 0,
    payouts            bigint NOT NULL DEFAULT 0,
    negative_change    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (generation, day)
) PARTITION BY LIST (generation);

-- Each account's balance at the end of every day it had a transaction.
CREATE TABLE account_days (
    generation bigint NOT NULL,
    account_id uuid   NOT NULL,
    day        date   NOT NULL,
    balance    bigint NOT NULL,
    PRIMARY KEY (generation, account_id, day)
) PARTITION BY LIST (generation);

-- The task with the highest completion reward of each day (ties: the greater task id).
CREATE TABLE day_top_tasks (
    generation bigint NOT NULL,
    day        date   NOT NULL,
    task_id    uuid   NOT NULL,
    reward     bigint NOT NULL,
    PRIMARY KEY (generation, day)
) PARTITION BY LIST (generation);
