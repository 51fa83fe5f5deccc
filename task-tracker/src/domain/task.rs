//! What a valid new task is.

use ates_schemas::jira;
use ates_web::text::{self, TextKind};
use sha2::{Digest, Sha256};

/// The longest title.
pub const MAX_TITLE: usize = 300;
/// The longest description.
pub const MAX_DESCRIPTION: usize = 10_000;

/// A new task's checked fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    /// Trimmed, not blank, without `[` or `]`.
    pub title: String,
    /// A well-formed jira key, or none.
    pub jira_id: Option<String>,
    /// Free text.
    pub description: String,
}

impl NewTask {
    /// Checks a create request; the error is a sentence for the caller.
    pub fn parse(title: &str, jira_id: Option<&str>, description: Option<&str>) -> Result<Self, String> {
        let title = title.trim();
        if title.is_empty() {
            return Err("The title must not be blank.".into());
        }
        if title.contains(['[', ']']) {
            return Err(
                "The title must not contain `[` or `]`: put the jira id (e.g. POP-12) in `jira_id`.".into()
            );
        }
        if title.chars().count() > MAX_TITLE {
            return Err(format!("The title must be at most {MAX_TITLE} characters."));
        }
        text::check("title", title, TextKind::Line)?;
        let jira_id = jira_id.map(str::trim).filter(|id| !id.is_empty());
        if let Some(id) = jira_id {
            text::check("jira_id", id, TextKind::Line)?;
        }
        if let Some(id) = jira_id
            && !jira::is_valid(id)
        {
            return Err(format!(
                "`{id}` is not a jira id: use an upper-case project key, a dash and a number, like POP-12."
            ));
        }
        let description = description.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(format!("The description must be at most {MAX_DESCRIPTION} characters."));
        }
        text::check("description", description, TextKind::Paragraphs)?;
        Ok(NewTask {
            title: title.to_owned(),
            jira_id: jira_id.map(str::to_owned),
            description: description.to_owned(),
        })
    }

    /// A digest of the fields: a request repeated with the same `Idempotency-Key` must match it.
    pub fn request_hash(&self) -> Vec<u8> {
        let canonical = serde_json::json!([self.title, self.jira_id, self.description]);
        Sha256::digest(canonical.to_string().as_bytes()).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::NewTask;

    #[test]
    fn a_good_task_is_trimmed() {
        let task = NewTask::parse("  Feed the birds ", Some(" POP-12 "), None).unwrap();
        assert_eq!(
            task,
            NewTask {
                title: "Feed the birds".into(),
                jira_id: Some("POP-12".into()),
                description: String::new()
            }
        );
        assert_eq!(NewTask::parse("x", Some("  "), Some("d")).unwrap().jira_id, None);
    }

    #[test]
    fn brackets_blank_and_long_titles_are_refused() {
        assert!(NewTask::parse("[POP-1] Feed", None, None).unwrap_err().contains("`[` or `]`"));
        assert!(NewTask::parse("Feed ]", None, None).is_err());
        assert!(NewTask::parse("   ", None, None).unwrap_err().contains("blank"));
        assert!(NewTask::parse(&"x".repeat(301), None, None).unwrap_err().contains("300"));
    }

    #[test]
    fn jira_ids_must_be_well_formed() {
        assert!(NewTask::parse("Feed", Some("pop-1"), None).unwrap_err().contains("not a jira id"));
        assert!(NewTask::parse("Feed", Some("POP 1"), None).is_err());
        assert!(NewTask::parse("Feed", Some("POP-1"), None).is_ok());
    }

    #[test]
    fn descriptions_have_a_limit() {
        assert!(NewTask::parse("Feed", None, Some(&"d".repeat(10_001))).is_err());
    }
}
