-- Closed billing days and what their close did. A close is idempotent: closing a closed day
-- returns this row and changes nothing.
CREATE TABLE billing_days (
    billing_date        date        PRIMARY KEY,
    closed_at           timestamptz NOT NULL DEFAULT now(),
    accounts_paid       bigint      NOT NULL,
    total_paid          bigint      NOT NULL,
    management_earnings bigint      NOT NULL
);

-- One email per payout, queued in the same transaction as the payout and sent by the mailer
-- with retries. sent_at is set only after the mail server accepted the message.
CREATE TABLE payout_emails (
    transaction_id  uuid        PRIMARY KEY REFERENCES transactions,
    account_id      uuid        NOT NULL,
    billing_date    date        NOT NULL,
    amount          bigint      NOT NULL CHECK (amount > 0),
    message_id      text        NOT NULL UNIQUE,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    sent_to         text
);

CREATE INDEX payout_emails_due ON payout_emails (next_attempt_at) WHERE sent_at IS NULL;
