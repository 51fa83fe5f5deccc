//! The ledger's invariants, checked on demand.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

/// What the check found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// No problem found.
    pub ok: bool,
    /// One sentence per broken invariant.
    pub problems: Vec<String>,
    /// Transactions checked.
    pub transactions: i64,
}

/// Checks that every balance is the sum of its entries, every closed balance the sum of its
/// entries billed up to the last closed day and never positive (it was paid out), the entries
/// of all accounts and of every transaction sum to zero, every balance_after is the running sum of its account,
/// every fee and reward has its causing event recorded, and every transaction still in the
/// outbox horizon has its `accounting.transaction_applied` event.
pub async fn check(pool: &PgPool, outbox_retention: Duration) -> Result<Report, sqlx::Error> {
    let mut problems = Vec::new();
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await };
    let checks: [(&'static str, &'static str); 7] = [
        (
            "SELECT count(*) FROM balances b
             LEFT JOIN (SELECT account_id, sum(amount) AS total FROM entries GROUP BY account_id) e USING (account_id)
             WHERE b.balance <> coalesce(e.total, 0)",
            "account balance(s) differ from the sum of their entries",
        ),
        (
            "SELECT count(*) FROM (SELECT transaction_id FROM entries GROUP BY transaction_id
                                   HAVING sum(amount) <> 0 OR count(*) <> 2) unbalanced",
            "transaction(s) do not have two entries summing to zero",
        ),
        (
            "SELECT count(*) FROM transactions t WHERE NOT EXISTS (SELECT FROM entries e WHERE e.transaction_id = t.transaction_id)",
            "transaction(s) have no entries",
        ),
        (
            "SELECT count(*) FROM (
                 SELECT balance_after, amount,
                        lag(balance_after, 1, 0::bigint) OVER (PARTITION BY account_id ORDER BY seq) AS before
                 FROM transactions) running
             WHERE balance_after <> before + amount",
            "transaction(s) have a balance_after that is not the running sum of their account",
        ),
        (
            "SELECT count(*) FROM transactions t
             WHERE t.kind <> 'payout' AND NOT EXISTS (SELECT FROM processed_events p WHERE p.event_id = t.cause_event_id)",
            "fee or reward transaction(s) have no recorded causing event",
        ),
        (
            "SELECT count(*) FROM balances b
             LEFT JOIN (SELECT e.account_id, sum(e.amount) AS total
                        FROM entries e JOIN transactions t USING (transaction_id)
                        WHERE t.billing_date <= (SELECT last_closed FROM billing_state)
                        GROUP BY e.account_id) c USING (account_id)
             WHERE b.closed_balance <> coalesce(c.total, 0)",
            "account(s) have a closed balance that is not the sum of their entries billed on or before the last closed day",
        ),
        (
            "SELECT count(*) FROM balances WHERE closed_balance > 0 AND account_id <> '00000000-0000-0000-0000-000000000000'",
            "account(s) closed a day with a positive balance that was not paid out",
        ),
    ];
    for (sql, problem) in checks {
        let found = count(sql).await?;
        if found > 0 {
            problems.push(format!("{found} {problem}"));
        }
    }
    let total: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(amount), 0)::bigint FROM entries").fetch_one(pool).await?;
    if total != 0 {
        problems.push(format!("the ledger sums to {total} cents instead of zero"));
    }
    let horizon =
        chrono::Utc::now() - chrono::Duration::from_std(outbox_retention).unwrap_or(chrono::Duration::MAX);
    let missing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM transactions t
         WHERE t.created_at > $1 AND NOT EXISTS (SELECT FROM outbox o WHERE o.event_id = t.applied_event_id)",
    )
    .bind(horizon)
    .fetch_one(pool)
    .await?;
    if missing > 0 {
        problems.push(format!("{missing} transaction(s) have no accounting.transaction_applied event"));
    }
    let transactions: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions").fetch_one(pool).await?;
    Ok(Report { ok: problems.is_empty(), problems, transactions })
}
