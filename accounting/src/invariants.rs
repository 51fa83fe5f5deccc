//! The ledger's invariants, checked on demand.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use crate::Result;

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

/// Checks that every balance is the sum of its entries (a popug's are its transactions), every
/// closed balance the sum of its entries billed up to the last closed day and never positive (it
/// was paid out), every journal (the transactions posted together) sums to zero with the
/// company's entry on its other side, so the ledger does and the company's balance, kept only as
/// entries, is minus every popug's; every day's totals are the sum of its transactions, every
/// balance_after is the running sum of its account, and every transaction still in the outbox
/// horizon has its `accounting.transaction_applied` event. (A fee or reward is the record of its
/// causing event, and its id derives from it: no event can post twice.)
pub async fn check(pool: &PgPool, outbox_retention: Duration) -> Result<Report> {
    let unbalanced_accounts = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM balances b
         FULL JOIN (SELECT account_id, sum(amount) AS total FROM transactions GROUP BY account_id) e USING (account_id)
         WHERE coalesce(b.balance, 0) <> coalesce(e.total, 0) OR b.account_id IS NULL"#
    )
    .fetch_one(pool)
    .await?;
    // Every transaction belongs to a journal that has a company entry (a foreign key): a journal
    // is unbalanced when that entry is not minus the sum of its transactions, or it has none.
    let unbalanced_journals = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM company_entries c
         LEFT JOIN (SELECT journal_id, sum(amount) AS total FROM transactions GROUP BY journal_id) t USING (journal_id)
         WHERE t.total IS NULL OR c.amount + t.total <> 0"#
    )
    .fetch_one(pool)
    .await?;
    let popugs_as_company = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM transactions WHERE account_id = '00000000-0000-0000-0000-000000000000'"#
    )
    .fetch_one(pool)
    .await?;
    let not_running = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM (
                 SELECT balance_after, amount,
                        lag(balance_after, 1, 0::bigint) OVER (PARTITION BY account_id ORDER BY seq) AS before
                 FROM transactions) running
             WHERE balance_after <> before + amount"#
    )
    .fetch_one(pool)
    .await?;
    let misclosed = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM balances b
             FULL JOIN (SELECT account_id, sum(amount) AS total FROM transactions
                        WHERE billing_date <= (SELECT last_closed FROM billing_state)
                        GROUP BY account_id) c USING (account_id)
             WHERE coalesce(b.closed_balance, 0) <> coalesce(c.total, 0) OR b.account_id IS NULL"#
    )
    .fetch_one(pool)
    .await?;
    let unpaid = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM balances WHERE closed_balance > 0 AND account_id <> '00000000-0000-0000-0000-000000000000'"#
    )
    .fetch_one(pool)
    .await?;
    let mistotalled = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM (
                 SELECT billing_date, sum(assign_fees) AS fees, sum(completion_rewards) AS rewards, sum(payouts) AS payouts
                 FROM daily_totals GROUP BY billing_date) d
             FULL JOIN (SELECT billing_date,
                               coalesce(sum(amount) FILTER (WHERE kind = 'assign_fee'), 0) AS fees,
                               coalesce(sum(amount) FILTER (WHERE kind = 'completion_reward'), 0) AS rewards,
                               coalesce(sum(amount) FILTER (WHERE kind = 'payout'), 0) AS payouts
                        FROM transactions GROUP BY billing_date) t USING (billing_date)
             WHERE (d.fees, d.rewards, d.payouts) IS DISTINCT FROM (t.fees, t.rewards, t.payouts)"#
    )
    .fetch_one(pool)
    .await?;
    let checks = [
        (unbalanced_accounts, "account balance(s) differ from the sum of their entries, or are missing"),
        (
            unbalanced_journals,
            "journal(s) have a company entry that is not minus the sum of their transactions",
        ),
        (popugs_as_company, "transaction(s) are on the company's account instead of a popug's"),
        (mistotalled, "billing day(s) have totals that differ from the sum of their transactions"),
        (not_running, "transaction(s) have a balance_after that is not the running sum of their account"),
        (
            misclosed,
            "account(s) have a closed balance that is not the sum of their entries billed on or before the last closed day",
        ),
        (unpaid, "account(s) closed a day with a positive balance that was not paid out"),
    ];
    let mut problems: Vec<String> = checks
        .into_iter()
        .filter(|&(found, _)| found > 0)
        .map(|(found, problem)| format!("{found} {problem}"))
        .collect();
    let total = sqlx::query_scalar!(
        r#"SELECT ((SELECT coalesce(sum(amount), 0) FROM transactions)
                 + (SELECT coalesce(sum(amount), 0) FROM company_entries))::bigint AS "total!""#
    )
    .fetch_one(pool)
    .await?;
    if total != 0 {
        problems.push(format!("the ledger sums to {total} cents instead of zero"));
    }
    let horizon =
        chrono::Utc::now() - chrono::Duration::from_std(outbox_retention).unwrap_or(chrono::Duration::MAX);
    let missing = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM transactions t
         WHERE t.created_at > $1 AND NOT EXISTS (SELECT FROM outbox o WHERE o.event_id = t.applied_event_id)"#,
        horizon,
    )
    .fetch_one(pool)
    .await?;
    if missing > 0 {
        problems.push(format!("{missing} transaction(s) have no accounting.transaction_applied event"));
    }
    let transactions =
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM transactions"#).fetch_one(pool).await?;
    Ok(Report { ok: problems.is_empty(), problems, transactions })
}

/// How many transactions of `kind` each of the events `causes` caused (events that caused none
/// are absent): a fee per `tasks.assigned`, a reward per `tasks.completed`, exactly one each.
pub async fn postings_caused_by(
    pool: &PgPool,
    kind: ates_schemas::events::TransactionKind,
    causes: &[uuid::Uuid],
) -> Result<std::collections::HashMap<uuid::Uuid, i64>> {
    let counts = sqlx::query!(
        r#"SELECT cause_event_id, count(*) AS "count!" FROM transactions
           WHERE kind = $1 AND cause_event_id = ANY($2) GROUP BY cause_event_id"#,
        kind.as_str(),
        causes,
    )
    .fetch_all(pool)
    .await?;
    Ok(counts.into_iter().map(|row| (row.cause_event_id, row.count)).collect())
}
