-- Each account's balance at the end of the last closed day: the sum of its entries billed on
-- or before billing_state.last_closed. A close pays out (closed_balance + that day's entries)
-- when positive, so entries billed to later days never count towards an earlier payout.
ALTER TABLE balances ADD COLUMN closed_balance bigint NOT NULL DEFAULT 0;

UPDATE balances b SET closed_balance = s.total
FROM (SELECT e.account_id, sum(e.amount) AS total
      FROM entries e JOIN transactions t USING (transaction_id)
      WHERE t.billing_date <= (SELECT last_closed FROM billing_state)
      GROUP BY e.account_id) s
WHERE b.account_id = s.account_id;
