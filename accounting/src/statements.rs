//! The read side: balances, audit logs by day, the per-day dashboard.

use ates_schemas::events::{Role, TransactionKind};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::posting::COMPANY;
use crate::{Error, Result};

/// A transaction as the audit log shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Transaction {
    pub transaction_id: Uuid,
    pub account_id: Uuid,
    pub kind: TransactionKind,
    /// Signed cents: fees and payouts are negative.
    pub amount: i64,
    /// The balance in cents after this transaction.
    pub balance_after: i64,
    pub task_id: Option<Uuid>,
    /// Known once `tasks.added` has arrived.
    pub task_title: Option<String>,
    pub jira_id: Option<String>,
    pub billing_date: NaiveDate,
    pub created_at: DateTime<Utc>,
    /// What it was for, in words.
    pub description: String,
}

/// A transaction as stored, with its task's title.
struct TransactionRow {
    transaction_id: Uuid,
    account_id: Uuid,
    kind: String,
    amount: i64,
    balance_after: i64,
    task_id: Option<Uuid>,
    task_title: Option<String>,
    jira_id: Option<String>,
    billing_date: NaiveDate,
    created_at: DateTime<Utc>,
}

impl TryFrom<TransactionRow> for Transaction {
    type Error = Error;

    /// The row with its kind read and its description written.
    fn try_from(row: TransactionRow) -> Result<Self> {
        let kind = TransactionKind::try_from(row.kind).map_err(Error::Unreadable)?;
        let task = match (&row.jira_id, &row.task_title, row.task_id) {
            (Some(jira), Some(title), _) => format!("[{jira}] {title}"),
            (None, Some(title), _) => title.clone(),
            (_, None, Some(id)) => format!("task {id}"),
            (_, None, None) => String::new(),
        };
        let description = match kind {
            TransactionKind::AssignFee => format!("Fee for being assigned {task}"),
            TransactionKind::CompletionReward => format!("Reward for completing {task}"),
            TransactionKind::Payout => format!("Payout of the balance of {}", row.billing_date),
        };
        Ok(Transaction {
            transaction_id: row.transaction_id,
            account_id: row.account_id,
            kind,
            amount: row.amount,
            balance_after: row.balance_after,
            task_id: row.task_id,
            task_title: row.task_title,
            jira_id: row.jira_id,
            billing_date: row.billing_date,
            created_at: row.created_at,
            description,
        })
    }
}

/// An account's balance and its transactions of one day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Statement {
    pub account_id: Uuid,
    /// The current balance in cents, every day's entries included.
    pub balance: i64,
    /// The billing day the transactions are from.
    pub date: NaiveDate,
    /// What the account carried into `date`: its entries billed before it, in cents.
    pub opening_balance: i64,
    /// Its entries billed on or before `date`: the day's closing balance, which is zero or a
    /// debt once the day is closed and paid out.
    pub closing_balance: i64,
    /// That day's transactions, in the order they were posted.
    pub transactions: Vec<Transaction>,
}

/// `account`'s balance and its transactions billed on `date`.
///
/// Both balances of the day are worked out from the account's balance at the end of the last
/// closed day (`closed_balance`), not by summing its whole history: nothing is ever billed to a
/// closed day, so the sums of closed days never change. For a day after the last closed one, the
/// entries of the open days before it (usually none) are added; for a closed day, those of the
/// closed days after it (none for the day just closed, which the payout email shows) are taken
/// off. Callers that want every figure from one moment run it in a snapshot
/// ([`ates_messaging::db::begin_snapshot`]).
pub async fn statement(conn: &mut PgConnection, account: Uuid, date: NaiveDate) -> Result<Statement> {
    let head = sqlx::query!(
        r#"SELECT b.balance AS "balance?", b.closed_balance AS "closed_balance?", s.last_closed
         FROM billing_state s LEFT JOIN balances b ON b.account_id = $1"#,
        account,
    )
    .fetch_one(&mut *conn)
    .await?;
    let transactions = sqlx::query_as!(
        TransactionRow,
        r#"SELECT t.transaction_id, t.account_id, t.kind, t.amount, t.balance_after, t.task_id,
                k.title AS "task_title?", k.jira_id AS "jira_id?", t.billing_date, t.created_at
         FROM transactions t LEFT JOIN tasks k USING (task_id)
         WHERE t.account_id = $1 AND t.billing_date = $2 ORDER BY t.seq"#,
        account,
        date,
    )
    .fetch_all(&mut *conn)
    .await?;
    let listed: i64 = transactions.iter().map(|t| t.amount).sum();
    let closed_balance = head.closed_balance.unwrap_or(0);
    let (opening_balance, closing_balance) = match head.last_closed {
        Some(closed) if date <= closed => {
            let closing = closed_balance - billed(conn, account, Some(date), Some(closed)).await?;
            (closing - listed, closing)
        }
        last_closed => {
            // Zero when no day was ever closed.
            let opening = closed_balance + billed(conn, account, last_closed, date.pred_opt()).await?;
            (opening, opening + listed)
        }
    };
    Ok(Statement {
        account_id: account,
        balance: head.balance.unwrap_or(0),
        date,
        opening_balance,
        closing_balance,
        transactions: transactions.into_iter().map(Transaction::try_from).collect::<Result<_>>()?,
    })
}

/// The sum of `account`'s entries billed after `after` (from the first if `None`) and on or
/// before `through` (none if `None`); no query when that is no day at all.
async fn billed(
    conn: &mut PgConnection,
    account: Uuid,
    after: Option<NaiveDate>,
    through: Option<NaiveDate>,
) -> Result<i64> {
    let Some(through) = through.filter(|through| after < Some(*through)) else { return Ok(0) };
    Ok(sqlx::query_scalar!(
        r#"SELECT coalesce(sum(amount), 0)::bigint AS "sum!" FROM transactions
         WHERE account_id = $1 AND billing_date > coalesce($2, '-infinity'::date) AND billing_date <= $3"#,
        account,
        after,
        through,
    )
    .fetch_one(conn)
    .await?)
}

/// An account with its balance, for admins and accountants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountBalance {
    pub account_id: Uuid,
    /// Unknown until `accounts.created` has arrived.
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub role: OptionalRole,
    pub active: bool,
    /// In cents.
    pub balance: i64,
}

/// A role that may not be known yet.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct OptionalRole(pub Option<Role>);

impl TryFrom<Option<String>> for OptionalRole {
    type Error = String;

    fn try_from(value: Option<String>) -> Result<Self, String> {
        value.map(Role::try_from).transpose().map(OptionalRole)
    }
}

/// Every popug account accounting knows, with its balance.
pub async fn accounts(conn: &mut PgConnection) -> Result<Vec<AccountBalance>> {
    let rows = sqlx::query!(
        r#"SELECT account_id AS "account_id!", a.email AS "email?", a.full_name AS "full_name?",
                a.role AS "role?", coalesce(a.active, false) AS "active!",
                coalesce(b.balance, 0) AS "balance!"
         FROM accounts a FULL JOIN balances b USING (account_id)
         WHERE account_id <> $1
         ORDER BY a.full_name NULLS LAST, account_id"#,
        COMPANY,
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(AccountBalance {
                account_id: row.account_id,
                email: row.email,
                full_name: row.full_name,
                role: OptionalRole::try_from(row.role).map_err(Error::Unreadable)?,
                active: row.active,
                balance: row.balance,
            })
        })
        .collect()
}

/// One day of the dashboard. Amounts in cents, as positive sums.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayTotals {
    pub date: NaiveDate,
    /// Fees collected minus rewards paid: −(sum of fee and reward transactions).
    pub management_earnings: i64,
    /// Fees collected from assignees.
    pub assign_fees: i64,
    /// Rewards paid for completed tasks.
    pub completion_rewards: i64,
    /// Positive balances paid out at the end of the day.
    pub payouts: i64,
}

/// Every day from `from` to `to`, with zeros for days without transactions.
pub async fn dashboard(conn: &mut PgConnection, from: NaiveDate, to: NaiveDate) -> Result<Vec<DayTotals>> {
    let rows = sqlx::query!(
        r#"SELECT day::date AS "date!", coalesce(t.assign_fees, 0) AS "assign_fees!",
                coalesce(t.completion_rewards, 0) AS "completion_rewards!", coalesce(t.payouts, 0) AS "payouts!"
         FROM generate_series($1::date, $2::date, interval '1 day') AS day
         LEFT JOIN (SELECT billing_date, sum(assign_fees)::bigint AS assign_fees,
                           sum(completion_rewards)::bigint AS completion_rewards, sum(payouts)::bigint AS payouts
                    FROM daily_totals WHERE billing_date BETWEEN $1 AND $2 GROUP BY billing_date) t
                ON t.billing_date = day::date
         ORDER BY day"#,
        from,
        to,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|day| DayTotals {
            date: day.date,
            management_earnings: -(day.assign_fees + day.completion_rewards),
            assign_fees: -day.assign_fees,
            completion_rewards: day.completion_rewards,
            payouts: -day.payouts,
        })
        .collect())
}
