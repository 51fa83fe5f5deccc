//! The read side: balances, audit logs by day, the per-day dashboard.

use ates_schemas::events::{Role, TransactionKind};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::posting::COMPANY;

/// A transaction as the audit log shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Transaction {
    pub transaction_id: Uuid,
    pub account_id: Uuid,
    #[sqlx(try_from = "String")]
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
    #[sqlx(skip)]
    pub description: String,
}

impl Transaction {
    fn described(mut self) -> Self {
        let task = match (&self.jira_id, &self.task_title, self.task_id) {
            (Some(jira), Some(title), _) => format!("[{jira}] {title}"),
            (None, Some(title), _) => title.clone(),
            (_, None, Some(id)) => format!("task {id}"),
            (_, None, None) => String::new(),
        };
        self.description = match self.kind {
            TransactionKind::AssignFee => format!("Fee for being assigned {task}"),
            TransactionKind::CompletionReward => format!("Reward for completing {task}"),
            TransactionKind::Payout => format!("Payout of the balance of {}", self.billing_date),
        };
        self
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
pub async fn statement(
    conn: &mut PgConnection,
    account: Uuid,
    date: NaiveDate,
) -> Result<Statement, sqlx::Error> {
    let balance: Option<i64> = sqlx::query_scalar("SELECT balance FROM balances WHERE account_id = $1")
        .bind(account)
        .fetch_optional(&mut *conn)
        .await?;
    let (opening_balance, closing_balance): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(amount) FILTER (WHERE billing_date < $2), 0)::bigint,
                coalesce(sum(amount), 0)::bigint
         FROM transactions WHERE account_id = $1 AND billing_date <= $2",
    )
    .bind(account)
    .bind(date)
    .fetch_one(&mut *conn)
    .await?;
    let transactions: Vec<Transaction> = sqlx::query_as(
        "SELECT t.transaction_id, t.account_id, t.kind, t.amount, t.balance_after, t.task_id,
                k.title AS task_title, k.jira_id, t.billing_date, t.created_at
         FROM transactions t LEFT JOIN tasks k USING (task_id)
         WHERE t.account_id = $1 AND t.billing_date = $2 ORDER BY t.seq",
    )
    .bind(account)
    .bind(date)
    .fetch_all(conn)
    .await?;
    Ok(Statement {
        account_id: account,
        balance: balance.unwrap_or(0),
        date,
        opening_balance,
        closing_balance,
        transactions: transactions.into_iter().map(Transaction::described).collect(),
    })
}

/// An account with its balance, for admins and accountants.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AccountBalance {
    pub account_id: Uuid,
    /// Unknown until `accounts.created` has arrived.
    pub email: Option<String>,
    pub full_name: Option<String>,
    #[sqlx(try_from = "Option<String>")]
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
pub async fn accounts(conn: &mut PgConnection) -> Result<Vec<AccountBalance>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account_id, a.email, a.full_name, a.role, coalesce(a.active, false) AS active,
                coalesce(b.balance, 0) AS balance
         FROM accounts a FULL JOIN balances b USING (account_id)
         WHERE account_id <> $1
         ORDER BY a.full_name NULLS LAST, account_id",
    )
    .bind(COMPANY)
    .fetch_all(conn)
    .await
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
pub async fn dashboard(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayTotals>, sqlx::Error> {
    let rows: Vec<(NaiveDate, i64, i64, i64)> = sqlx::query_as(
        "SELECT day::date, coalesce(t.assign_fees, 0), coalesce(t.completion_rewards, 0), coalesce(t.payouts, 0)
         FROM generate_series($1::date, $2::date, interval '1 day') AS day
         LEFT JOIN daily_totals t ON t.billing_date = day::date
         ORDER BY day",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(date, fees, rewards, payouts)| DayTotals {
            date,
            management_earnings: -(fees + rewards),
            assign_fees: -fees,
            completion_rewards: rewards,
            payouts: -payouts,
        })
        .collect())
}
