//! What a payout email says: the amount in dollars and the day's transactions.

use std::fmt::Write as _;

use crate::domain::money::dollars;
use crate::statements::Statement;

/// A payout email's subject and bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The email for a payout of `amount` cents to `name`, with the statement of its day.
pub fn payout(name: &str, amount: i64, statement: &Statement) -> Content {
    let day = statement.date;
    let subject = format!("Your aTES payout for {day}: {}", dollars(amount));
    let mut text = format!(
        "Hello {name},\n\nyour balance for {day} has been paid out: {}.\n\nThe day's transactions:\n\n",
        dollars(amount)
    );
    let mut rows = String::new();
    for t in &statement.transactions {
        let _ = writeln!(
            text,
            "  {:>12}  {}  (balance {})",
            dollars(t.amount),
            t.description,
            dollars(t.balance_after)
        );
        let _ = write!(
            rows,
            "<tr><td style=\"text-align:right\">{}</td><td>{}</td><td style=\"text-align:right\">{}</td></tr>",
            dollars(t.amount),
            escape(&t.description),
            dollars(t.balance_after)
        );
    }
    text.push_str("\nUberPopug Inc. payroll\n");
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\">\
         <p>Hello {},</p><p>your balance for {day} has been paid out: <strong>{}</strong>.</p>\
         <table cellpadding=\"4\"><thead><tr><th>Amount</th><th>Transaction</th><th>Balance</th></tr></thead>\
         <tbody>{rows}</tbody></table><p>UberPopug Inc. payroll</p></body></html>",
        escape(name),
        dollars(amount)
    );
    Content { subject, text, html }
}

/// Makes text safe inside HTML.
fn escape(text: &str) -> String {
    text.chars().fold(String::with_capacity(text.len()), |mut out, c| {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statements::Transaction;
    use ates_schemas::events::TransactionKind;
    use chrono::NaiveDate;
    use uuid::Uuid;

    fn transaction(kind: TransactionKind, amount: i64, balance_after: i64, description: &str) -> Transaction {
        Transaction {
            transaction_id: Uuid::new_v4(),
            account_id: Uuid::nil(),
            kind,
            amount,
            balance_after,
            task_id: None,
            task_title: None,
            jira_id: None,
            billing_date: NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            created_at: chrono::Utc::now(),
            description: description.into(),
        }
    }

    #[test]
    fn the_email_shows_the_amount_in_dollars_and_the_days_transactions() {
        let statement = Statement {
            account_id: Uuid::nil(),
            balance: 0,
            date: NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            transactions: vec![
                transaction(TransactionKind::AssignFee, -1250, -1250, "Fee for being assigned <b>Feed</b>"),
                transaction(TransactionKind::CompletionReward, 3700, 2450, "Reward for completing Feed"),
                transaction(TransactionKind::Payout, -2450, 0, "Payout of the balance of 2026-11-21"),
            ],
        };

        let mail = payout("Pop & Ug", 2450, &statement);

        assert_eq!(mail.subject, "Your aTES payout for 2026-11-21: $24.50");
        assert!(mail.text.contains("paid out: $24.50"));
        assert!(mail.text.contains("-$12.50  Fee for being assigned <b>Feed</b>  (balance -$12.50)"));
        assert!(mail.html.contains("Hello Pop &amp; Ug"));
        assert!(mail.html.contains("Fee for being assigned &lt;b&gt;Feed&lt;/b&gt;"), "user text is escaped");
        assert!(mail.html.contains("<strong>$24.50</strong>"));
    }
}
