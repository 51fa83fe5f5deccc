-- The correlation id of the close that made each payout, carried onto its accounting.payout_sent.
ALTER TABLE payout_emails ADD COLUMN correlation_id uuid;
