-- Double entry per posting instead of per transaction. A posting (the transactions one batch
-- posts together: a journal) writes each popug's transaction, which is the popug's entry, and
-- one company entry on the other side, minus their sum. Every journal sums to zero, so the
-- ledger does; every popug's balance is the sum of its transactions; the company's balance is
-- the sum of its entries, minus every popug's. Per transaction that is one row instead of three
-- (the transaction, the popug's entry and the company's entry), and one foreign-key check instead
-- of two.
CREATE TABLE company_entries (
    journal_id uuid        PRIMARY KEY,
    amount     bigint      NOT NULL,
    posted_at  timestamptz NOT NULL DEFAULT now()
);

-- The transactions posted so far: one journal each, the company entry they had.
INSERT INTO company_entries (journal_id, amount, posted_at)
SELECT e.transaction_id, e.amount, t.created_at
FROM entries e JOIN transactions t USING (transaction_id)
WHERE e.account_id = '00000000-0000-0000-0000-000000000000';

ALTER TABLE transactions ADD COLUMN journal_id uuid;
UPDATE transactions SET journal_id = transaction_id;
ALTER TABLE transactions ALTER COLUMN journal_id SET NOT NULL;
ALTER TABLE transactions ADD CONSTRAINT transactions_journal FOREIGN KEY (journal_id) REFERENCES company_entries;

DROP TABLE entries;
