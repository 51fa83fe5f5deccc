-- A consuming service's own copy of the accounts, built only from accounts.* events, in any
-- order. A row may exist before its accounts.created arrives (state_time is then NULL).
CREATE TABLE accounts (
    account_id             uuid PRIMARY KEY,
    email                  text,
    full_name              text,
    role                   text CHECK (role IN ('admin', 'manager', 'accountant', 'worker')),
    active                 boolean NOT NULL DEFAULT false,
    -- event_time of the full state applied last; older states arriving later are ignored
    state_time             timestamptz,
    -- when the role last changed or the account was deactivated: tokens issued before are outdated
    credentials_changed_at timestamptz
);

CREATE INDEX accounts_assignable ON accounts (account_id)
    WHERE active AND role IN ('accountant', 'worker');
