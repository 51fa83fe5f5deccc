-- `ates audit` finds the fee or reward each task event caused.
CREATE INDEX transactions_cause ON transactions (cause_event_id);
