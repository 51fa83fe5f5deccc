//! Jira issue keys: the format rule, and moving a legacy `[ABC-12]` title prefix into its own field.

use std::sync::LazyLock;

use regex::Regex;

/// The longest jira id accepted.
pub const MAX_LEN: usize = 32;

static JIRA_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Z][A-Z0-9_]*-[0-9]+$").expect("valid regex"));
// `(?s)`: the rest of the title may span lines.
static LEGACY_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)^\s*\[\s*([A-Za-z][A-Za-z0-9_]*-[0-9]+)\s*\]\s*(.*)$").expect("valid regex")
});

/// Whether `id` is a well-formed jira issue key such as `ABC-12`.
pub fn is_valid(id: &str) -> bool {
    id.len() <= MAX_LEN && JIRA_ID.is_match(id)
}

/// Splits a legacy (v1) title into its jira id and a title without brackets.
///
/// `"[abc-12] Fix login"` becomes `(Some("ABC-12"), "Fix login")`. Brackets left anywhere else
/// become parentheses, because v2 titles may not contain them; a title that was only the jira
/// id keeps the id as its title so it is never blank. A key too long for the jira id field
/// stays in the title (as `(KEY-1) …`), so it is never lost.
pub fn split_legacy_title(title: &str) -> (Option<String>, String) {
    let (jira_id, rest) = match LEGACY_PREFIX.captures(title) {
        Some(caps) if is_valid(&caps[1].to_uppercase()) => (Some(caps[1].to_uppercase()), caps[2].to_owned()),
        _ => (None, title.to_owned()),
    };
    let rest = rest.trim().replace('[', "(").replace(']', ")");
    let title = match (&jira_id, rest.is_empty()) {
        (Some(id), true) => id.clone(),
        _ => rest,
    };
    (jira_id, title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_jira_id_moves_out_of_the_title() {
        assert_eq!(split_legacy_title("[ABC-12] Fix login"), (Some("ABC-12".into()), "Fix login".into()));
        assert_eq!(split_legacy_title("  [ abc-7 ]   - deploy"), (Some("ABC-7".into()), "- deploy".into()));
    }

    #[test]
    fn a_title_without_a_jira_id_stays_but_loses_its_brackets() {
        assert_eq!(split_legacy_title("Fix login"), (None, "Fix login".into()));
        assert_eq!(split_legacy_title("Fix [urgent] login"), (None, "Fix (urgent) login".into()));
        assert_eq!(split_legacy_title("[not a key] x"), (None, "(not a key) x".into()));
    }

    #[test]
    fn a_title_that_is_only_a_jira_id_keeps_it_as_title() {
        assert_eq!(split_legacy_title("[POP-1]"), (Some("POP-1".into()), "POP-1".into()));
    }

    #[test]
    fn a_title_over_several_lines_keeps_its_jira_id() {
        assert_eq!(
            split_legacy_title("[POP-3] Fix login\nand the logout too"),
            (Some("POP-3".into()), "Fix login\nand the logout too".into())
        );
    }

    #[test]
    fn a_key_too_long_for_a_jira_id_stays_in_the_title() {
        let key = format!("{}-1", "A".repeat(40));
        assert_eq!(split_legacy_title(&format!("[{key}] Fix login")), (None, format!("({key}) Fix login")));
    }

    #[test]
    fn jira_ids_are_validated() {
        assert!(is_valid("ABC-12"));
        assert!(is_valid("A1_B-0"));
        assert!(!is_valid("abc-12"));
        assert!(!is_valid("ABC12"));
        assert!(!is_valid("-12"));
        assert!(!is_valid(&format!("{}-1", "A".repeat(40))));
    }
}
