-- Tasks and who they are assigned to. Every change commits with its tasks.* events.
CREATE TABLE tasks (
    task_id      uuid        PRIMARY KEY,
    title        text        NOT NULL,
    jira_id      text,
    description  text        NOT NULL DEFAULT '',
    status       text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    assignee_id  uuid        NOT NULL,
    created_by   uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);

-- Listing newest first, with keyset pagination on (created_at, task_id).
CREATE INDEX tasks_newest ON tasks (created_at DESC, task_id DESC);
CREATE INDEX tasks_by_assignee ON tasks (assignee_id, created_at DESC, task_id DESC);
-- Shuffle reads every open task.
CREATE INDEX tasks_open ON tasks (task_id) WHERE status = 'open';

-- Idempotency-Key of task creation, per caller: a retried request gets the same task.
CREATE TABLE idempotency_keys (
    account_id   uuid        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    task_id      uuid        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
