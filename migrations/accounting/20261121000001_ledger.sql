-- Accounting's copy of the tasks, with the price it gave each one, once.
CREATE TABLE tasks (
    task_id           uuid        PRIMARY KEY,
    assign_fee        bigint      NOT NULL CHECK (assign_fee > 0),
    completion_reward bigint      NOT NULL CHECK (completion_reward > 0),
    priced_at         timestamptz NOT NULL DEFAULT now(),
    -- filled when tasks.added arrives, which may be after the first assignment
    title             text,
    jira_id           text
);

-- The ledger: immutable transactions on popugs' accounts. Ids derive from the causing event,
-- so one event can never post twice.
CREATE TABLE transactions (
    seq              bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    transaction_id   uuid        PRIMARY KEY,
    account_id       uuid        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('assign_fee', 'completion_reward', 'payout')),
    amount           bigint      NOT NULL,
    balance_after    bigint      NOT NULL,
    task_id          uuid,
    billing_date     date        NOT NULL,
    -- when the cause happened; billing_date is its business date or the earliest open day
    business_time    timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    cause_event_id   uuid        NOT NULL,
    applied_event_id uuid        NOT NULL UNIQUE
);

CREATE INDEX transactions_account_day ON transactions (account_id, billing_date, seq);
CREATE INDEX transactions_day ON transactions (billing_date);

-- Double entry: every transaction moves money between a popug and the company account
-- (the nil UUID), so the entries of all accounts always sum to zero.
CREATE TABLE entries (
    transaction_id uuid   NOT NULL REFERENCES transactions,
    account_id     uuid   NOT NULL,
    amount         bigint NOT NULL,
    PRIMARY KEY (transaction_id, account_id)
);

CREATE INDEX entries_account ON entries (account_id);

-- Current balance of every account, the company's included; always the sum of its entries.
CREATE TABLE balances (
    account_id uuid        PRIMARY KEY,
    balance    bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per-day totals for the dashboard, kept as transactions post. Amounts as posted (signed).
CREATE TABLE daily_totals (
    billing_date       date   PRIMARY KEY,
    assign_fees        bigint NOT NULL DEFAULT 0,
    completion_rewards bigint NOT NULL DEFAULT 0,
    payouts            bigint NOT NULL DEFAULT 0
);

-- Closed billing days. Postings read last_closed with a share lock and a close takes it
-- exclusively, so nothing is ever posted to a day that is closed or being closed.
CREATE TABLE billing_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_closed date
);

INSERT INTO billing_state DEFAULT VALUES;
