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

/// The email for a payout of `amount` cents to `name`, with the statement of its day. Each
/// transaction shows the day's balance after it: what was carried in plus the day's entries
/// so far, never entries billed to a later day.
pub fn payout(name: &str, amount: i64, statement: &Statement) -> Content {
    let day = statement.date;
    let subject = format!("Your aTES payout for {day}: {}", dollars(amount));
    let mut text = format!(
        "Hello {name},\n\nyour balance for {day} has been paid out: {}.\n\nThe day's transactions:\n\n",
        dollars(amount)
    );
    let mut rows = String::new();
    let carried = statement.opening_balance;
    if carried != 0 {
        let _ = writeln!(text, "  {:>12}  Carried over from before {day}", dollars(carried));
        let _ = write!(
            rows,
            "<tr><td style=\"text-align:right\">{}</td><td>Carried over from before {day}</td><td></td></tr>",
            dollars(carried)
        );
    }
    let mut balance = carried;
    for t in &statement.transactions {
        balance += t.amount;
        let _ =
            writeln!(text, "  {:>12}  {}  (balance {})", dollars(t.amount), t.description, dollars(balance));
        let _ = write!(
            rows,
            "<tr><td style=\"text-align:right\">{}</td><td>{}</td><td style=\"text-align:right\">{}</td></tr>",
            dollars(t.amount),
            escape(&t.description),
            dollars(balance)
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
            opening_balance: 0,
            closing_balance: 0,
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

    #[test]
    fn the_balances_shown_are_the_days_own_whatever_later_days_hold() {
        // Carried a debt of $5.00 in; a later day's fee was posted between the reward and
        // the payout, so the transactions' own balance_after values include it.
        let statement = Statement {
            account_id: Uuid::nil(),
            balance: -1799,
            date: NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            opening_balance: -500,
            closing_balance: 0,
            transactions: vec![
                transaction(TransactionKind::CompletionReward, 3000, 2500, "Reward for completing Feed"),
                transaction(TransactionKind::Payout, -2500, -1799, "Payout of the balance of 2026-11-21"),
            ],
        };

        let mail = payout("Popug", 2500, &statement);

        assert!(mail.text.contains("-$5.00  Carried over from before 2026-11-21"), "{}", mail.text);
        assert!(mail.text.contains("$30.00  Reward for completing Feed  (balance $25.00)"), "{}", mail.text);
        assert!(
            mail.text.contains("-$25.00  Payout of the balance of 2026-11-21  (balance $0.00)"),
            "{}",
            mail.text
        );
        assert!(!mail.text.contains("17.99") && !mail.html.contains("17.99"), "nothing of the later day");
    }
}
