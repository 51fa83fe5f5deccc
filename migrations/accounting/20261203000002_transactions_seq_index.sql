-- `seq` orders each account's transactions (through transactions_account_day). It is an identity
-- column generated always, so it is unique without an index of its own, and nothing looks a
-- transaction up by it: one index less for every posting to write.
ALTER TABLE transactions DROP CONSTRAINT transactions_seq_key;
