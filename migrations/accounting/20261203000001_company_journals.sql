-- Double entry per posting instead of per transaction. A posting (the transactions one batch
-- posts together: a journal) writes each popug's transaction, which is the popug's entry, and
-- one company entry on the other side, minus their sum. Every journal sums to zero, so the
-- ledger does; every popug's balance is the sum of its transactions; the company's balance is
-- the sum of its entries, minus every popug's. Per transaction that is one row instead of three
-- (the transaction, the popug's entry and the company's entry), and one foreign-key check instead
-- of two.
-- Upgrading: stop every accounting instance first (an older one would still write `entries`).
-- The lock keeps any posting out while the ledger is converted. The conversion rewrites every
-- transaction row once, so on a large ledger it takes a while, with accounting down meanwhile.
DO $$ BEGIN LOCK TABLE transactions, entries IN SHARE ROW EXCLUSIVE MODE; END $$;

-- The entries dropped below must say exactly what the transactions do: each transaction's own
-- account at its amount, and the company's opposite entry.
DO $$
DECLARE
    wrong bigint;
BEGIN
    SELECT count(*) INTO wrong FROM transactions t
    WHERE (SELECT count(*) FROM entries e WHERE e.transaction_id = t.transaction_id) <> 2
       OR NOT EXISTS (SELECT FROM entries e WHERE e.transaction_id = t.transaction_id
                      AND e.account_id = t.account_id AND e.amount = t.amount)
       OR NOT EXISTS (SELECT FROM entries e WHERE e.transaction_id = t.transaction_id
                      AND e.account_id = '00000000-0000-0000-0000-000000000000' AND e.amount = -t.amount);
    IF wrong > 0 THEN
        RAISE EXCEPTION '% transaction(s) do not have exactly their own entry and the company''s opposite one; the ledger needs repair before this upgrade', wrong;
    END IF;
END $$;

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
