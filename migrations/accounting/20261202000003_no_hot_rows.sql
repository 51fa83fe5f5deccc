-- No row that every posting has to lock, so postings of different popugs never wait for each
-- other and more accounting instances add throughput.
--
-- The company's balance is no longer kept as a row: every transaction still writes the
-- company's opposite entry (double entry), and the company's balance is the sum of its entries,
-- which is minus the sum of every popug's balance (the invariant check proves both).
DELETE FROM balances WHERE account_id = '00000000-0000-0000-0000-000000000000';

-- A day's totals are kept in shards, each posting adding to one; the day's totals are the sum
-- of its shards.
ALTER TABLE daily_totals ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE daily_totals DROP CONSTRAINT daily_totals_pkey;
ALTER TABLE daily_totals ADD PRIMARY KEY (billing_date, shard);
