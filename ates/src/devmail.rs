//! `GET /api/dev/mail`: in `ates dev`, the payout emails written as files, for the UI.

use std::path::PathBuf;
use std::sync::Arc;

use ates_schemas::events::Role;
use ates_tokens::{Authenticator, Caller};
use ates_web::{Json, Result};
use axum::Router;
use axum::extract::{FromRef, State};
use axum::routing::get;
use serde::Serialize;

/// An email as the UI lists it.
#[derive(Debug, Serialize)]
pub struct Mail {
    pub file: String,
    pub to: String,
    pub subject: String,
    pub date: String,
    /// The plain-text part.
    pub text: String,
}

#[derive(Clone)]
struct DevMail {
    dir: Arc<PathBuf>,
    authenticator: Authenticator,
}

impl FromRef<DevMail> for Authenticator {
    fn from_ref(state: &DevMail) -> Self {
        state.authenticator.clone()
    }
}

/// The route, reading `.eml` files from `dir` (admins and accountants).
pub fn router(dir: PathBuf, authenticator: Authenticator) -> Router {
    Router::new().route("/api/dev/mail", get(list)).with_state(DevMail { dir: Arc::new(dir), authenticator })
}

async fn list(State(state): State<DevMail>, caller: Caller) -> Result<Json<Vec<Mail>>> {
    caller.require(&[Role::Admin, Role::Accountant])?;
    let dir = state.dir.clone();
    let mails = tokio::task::spawn_blocking(move || read_all(&dir))
        .await
        .map_err(ates_web::Error::internal)?
        .map_err(ates_web::Error::internal)?;
    Ok(Json(mails))
}

/// Every readable `.eml` file in `dir`, newest first.
fn read_all(dir: &std::path::Path) -> std::io::Result<Vec<Mail>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let modified = entry.metadata()?.modified()?;
        let bytes = std::fs::read(&path)?;
        let Ok(parsed) = mailparse::parse_mail(&bytes) else { continue };
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case(name))
                .map(|h| h.get_value())
                .unwrap_or_default()
        };
        let text = plain_text(&parsed).unwrap_or_default();
        let mail = Mail {
            file: entry.file_name().to_string_lossy().into_owned(),
            to: header("To"),
            subject: header("Subject"),
            date: header("Date"),
            text,
        };
        found.push((modified, mail));
    }
    found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    Ok(found.into_iter().map(|(_, mail)| mail).collect())
}

fn plain_text(mail: &mailparse::ParsedMail<'_>) -> Option<String> {
    if mail.ctype.mimetype == "text/plain" {
        return mail.get_body().ok();
    }
    mail.subparts.iter().find_map(plain_text)
}
