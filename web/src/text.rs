//! Free text from clients, checked the same way in every service: PostgreSQL refuses NUL, and
//! control and bidi override characters make a title or a name display as something else.

/// What a piece of text is, which decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// One line: a title, a name, an email address. No control characters, no bidi overrides.
    Line,
    /// Free text such as a description: tabs and line breaks are allowed, other control
    /// characters are not.
    Paragraphs,
}

/// Bidi embeddings, overrides and isolates: they reorder what follows them on screen.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks `value` of the field `field`; the error is a sentence naming the field and what to
/// remove.
pub fn check(field: &str, value: &str, kind: TextKind) -> Result<(), String> {
    let allowed = |c: char| kind == TextKind::Paragraphs && matches!(c, '\t' | '\n' | '\r');
    if let Some((at, c)) = value.chars().enumerate().find(|(_, c)| c.is_control() && !allowed(*c)) {
        let what = if kind == TextKind::Paragraphs {
            "control characters other than tabs and line breaks"
        } else {
            "control characters"
        };
        return Err(format!(
            "{field} must not contain {what} (U+{:04X} at character {}).",
            u32::from(c),
            at + 1
        ));
    }
    if kind == TextKind::Line
        && let Some((at, c)) = value.chars().enumerate().find(|(_, c)| is_bidi_control(*c))
    {
        return Err(format!(
            "{field} must not contain bidi override characters (U+{:04X} at character {}).",
            u32::from(c),
            at + 1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{TextKind, check};

    #[test]
    fn lines_refuse_control_and_bidi_characters_and_name_the_field() {
        assert!(check("title", "Feed the birds", TextKind::Line).is_ok());
        assert!(check("title", "Füttere die Vögel 🐦", TextKind::Line).is_ok());
        let error = check("title", "a\u{0}b", TextKind::Line).unwrap_err();
        assert!(
            error.starts_with("title must not contain control characters (U+0000 at character 2)"),
            "{error}"
        );
        assert!(check("title", "tab\there", TextKind::Line).is_err());
        assert!(check("title", "\u{7f}", TextKind::Line).is_err());
        assert!(check("title", "\u{85}", TextKind::Line).is_err(), "C1 controls too");
        let error = check("full_name", "evil\u{202E}gnp.exe", TextKind::Line).unwrap_err();
        assert!(error.contains("bidi override"), "{error}");
        assert!(check("full_name", "\u{2067}x", TextKind::Line).is_err());
    }

    #[test]
    fn paragraphs_allow_tabs_and_line_breaks_only() {
        assert!(check("description", "one\r\ntwo\n\tthree", TextKind::Paragraphs).is_ok());
        assert!(check("description", "nul\u{0}", TextKind::Paragraphs).is_err());
        assert!(check("description", "bell\u{7}", TextKind::Paragraphs).is_err());
        assert!(check("description", "right-to-left \u{202E} is text here", TextKind::Paragraphs).is_ok());
    }
}
