-- Accounting's task consumers keep no dedupe record per event: an event is applied when its
-- effect is there, written in the same transaction. A fee or reward is its transaction
-- (`cause_event_id`, and the transaction id derives from it); an addition is its task's
-- `added_event_id`, set with the title. Events applied before this version are in
-- `processed_events`, which is still read.
ALTER TABLE tasks ADD COLUMN added_event_id uuid;

-- `Handler::recorded` and `ates audit` look events up by these.
CREATE INDEX tasks_added_event ON tasks (added_event_id);
-- No event causes two fees or rewards: the database holds the ledger to it too.
DROP INDEX transactions_cause;
CREATE UNIQUE INDEX transactions_cause ON transactions (cause_event_id) WHERE kind <> 'payout';
