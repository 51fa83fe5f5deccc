//! Payout emails: queued with the payout, sent by this worker with retries, recorded as sent
//! only after the mail server accepted them.

mod content;

use std::path::PathBuf;

use secrecy::ExposeSecret;
use std::time::Duration;

use ates_schemas::Envelope;
use ates_schemas::events::PayoutSentV1;
use chrono::{NaiveDate, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use ates_messaging::backoff::Backoff;

use crate::config::MailConfig;
use crate::ledger::OUTBOX;
use crate::statements;
use crate::{Error, Result};

/// Where messages go.
#[derive(Clone)]
enum Outlet {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

/// How long one SMTP exchange may take; lettre's own timeout covers only the connect.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

impl Outlet {
    async fn send(&self, message: Message, transaction_id: Uuid) -> Result<()> {
        match self {
            Outlet::Smtp(transport) => {
                match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(Error::Mail(e.to_string())),
                    Err(_) => {
                        Err(Error::Mail(format!("the mail server did not answer within {SEND_TIMEOUT:?}")))
                    }
                }
            }
            Outlet::Files(dir) => {
                let path = dir.join(format!("payout-{transaction_id}.eml"));
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| Error::Mail(format!("{}: {e}", dir.display())))?;
                tokio::fs::write(&path, message.formatted())
                    .await
                    .map_err(|e| Error::Mail(format!("{}: {e}", path.display())))
            }
        }
    }
}

/// Sends queued payout emails until shut down.
#[derive(Clone)]
pub struct Mailer {
    pool: PgPool,
    outlet: Outlet,
    from: Mailbox,
    retry_max: Duration,
}

/// A queued email with what it needs to be written.
struct Queued {
    transaction_id: Uuid,
    account_id: Uuid,
    billing_date: NaiveDate,
    amount: i64,
    message_id: String,
    attempts: i32,
    /// The close's, carried onto `payout_sent`.
    correlation_id: Option<Uuid>,
    email: Option<String>,
    full_name: Option<String>,
}

impl Mailer {
    /// A mailer for `pool`'s queue with `config`'s outlet; fails on a bad URL or sender.
    pub fn new(pool: PgPool, config: &MailConfig) -> anyhow::Result<Self> {
        let outlet = match &config.smtp_url {
            // The error names the variable, never the URL: it may hold a password.
            Some(url) => Outlet::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("SMTP_URL is not a usable SMTP URL: {e}"))?
                    .timeout(Some(Duration::from_secs(10)))
                    .build(),
            ),
            None => Outlet::Files(config.dir().to_owned()),
        };
        let from =
            config.from.parse().map_err(|e| anyhow::anyhow!("ATES_MAIL_FROM {:?}: {e}", config.from))?;
        Ok(Mailer { pool, outlet, from, retry_max: config.retry_max })
    }

    /// Sends what is due every second until `shutdown`. While the queue cannot be read or an
    /// attempt cannot be recorded, waits longer after each failure (up to `retry_max`), so a
    /// database fault never turns into an email resent every second.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(1), self.retry_max.max(Duration::from_secs(1)));
        loop {
            let pause = match self.send_due().await {
                Ok(sent) => {
                    if sent > 0 {
                        tracing::info!(sent, "sent payout emails");
                    }
                    backoff.reset();
                    Duration::from_secs(1)
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!("the payout mailer cannot use its queue, trying again in {delay:?}: {e}");
                    delay
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Sends every email that is due, one transaction each; returns how many went out. Stops
    /// the round at the first failure: the server is probably down for the rest too.
    ///
    /// A failed attempt is undone to a savepoint and recorded with its backoff in the same
    /// transaction, so it is not due again before its delay, whatever failed: the mail server,
    /// or recording an email the server had already accepted.
    pub async fn send_due(&self) -> Result<usize> {
        let mut sent = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let queued = sqlx::query_as!(
                Queued,
                r#"SELECT p.transaction_id, p.account_id, p.billing_date, p.amount, p.message_id, p.attempts, p.correlation_id,
                        a.email AS "email?", a.full_name AS "full_name?"
                 FROM payout_emails p LEFT JOIN accounts a USING (account_id)
                 WHERE p.sent_at IS NULL AND p.next_attempt_at <= now()
                 ORDER BY p.next_attempt_at LIMIT 1 FOR UPDATE OF p SKIP LOCKED"#,
            )
            .fetch_optional(&mut *tx)
            .await?;
            let Some(queued) = queued else { return Ok(sent) };
            let mut attempt = sqlx::Connection::begin(&mut *tx).await?;
            match self.deliver(&mut attempt, &queued).await {
                Ok(()) => {
                    attempt.commit().await?;
                    tx.commit().await?;
                    sent += 1;
                }
                Err(error) => {
                    attempt.rollback().await?;
                    let delay = retry_delay(queued.attempts, self.retry_max);
                    tracing::warn!(transaction_id = %queued.transaction_id, "payout email not sent, retrying in {delay:?}: {error}");
                    sqlx::query!(
                        "UPDATE payout_emails SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
                         WHERE transaction_id = $1",
                        queued.transaction_id,
                        error.to_string(),
                        Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
                    )
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(sent);
                }
            }
        }
    }

    /// Writes and sends one email; on success marks it sent and writes `accounting.payout_sent`
    /// in `tx`. A crash after the server accepted it resends it with the same Message-ID.
    async fn deliver(&self, tx: &mut sqlx::PgConnection, queued: &Queued) -> Result<()> {
        let email = queued.email.as_deref().ok_or(Error::EmailUnknown)?;
        let to: Mailbox = format!(
            "{} <{email}>",
            queued.full_name.as_deref().unwrap_or_default().replace(['<', '>', '"'], "")
        )
        .parse()
        .or_else(|_| email.parse())
        .map_err(|e| Error::NotAnAddress { email: email.to_owned(), reason: format!("{e}") })?;
        let statement = statements::statement(tx, queued.account_id, queued.billing_date).await?;
        let name = queued.full_name.as_deref().unwrap_or("popug");
        let content = content::payout(name, queued.amount, &statement);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(content.subject)
            .message_id(Some(queued.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(content.text, content.html))
            .map_err(|e| Error::Mail(e.to_string()))?;
        self.outlet.send(message, queued.transaction_id).await?;
        sqlx::query!(
            "UPDATE payout_emails SET sent_at = now(), sent_to = $2, attempts = attempts + 1, last_error = NULL
             WHERE transaction_id = $1",
            queued.transaction_id,
            email,
        )
        .execute(&mut *tx)
        .await?;
        let event = PayoutSentV1 {
            transaction_id: queued.transaction_id,
            account_id: queued.account_id,
            billing_date: queued.billing_date,
            amount: queued.amount,
            email: email.to_owned(),
        };
        OUTBOX
            .add_all(tx, &[Envelope::new(OUTBOX.producer(), event).correlated(queued.correlation_id)])
            .await?;
        tracing::info!(correlation_id = ?queued.correlation_id, transaction_id = %queued.transaction_id, "payout email sent");
        Ok(())
    }
}

/// 1 s after the first failure, doubling up to `max`.
fn retry_delay(attempts: i32, max: Duration) -> Duration {
    let exponent = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    Duration::from_secs(1).saturating_mul(2u32.saturating_pow(exponent)).min(max)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn retries_back_off_exponentially_up_to_the_ceiling() {
        let max = Duration::from_secs(300);
        assert_eq!(super::retry_delay(0, max), Duration::from_secs(1));
        assert_eq!(super::retry_delay(3, max), Duration::from_secs(8));
        assert_eq!(super::retry_delay(30, max), max);
    }
}
