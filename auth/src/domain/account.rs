//! What makes an account valid.

use std::str::FromStr as _;

use ates_web::text::TextKind;

use crate::{Error, Result};

/// The longest email address (RFC 5321).
pub const MAX_EMAIL: usize = 254;
/// The longest full name.
pub const MAX_NAME: usize = 200;
/// The shortest password.
pub const MIN_PASSWORD: usize = 8;
/// The longest password (hashing is costly; a megabyte password is an attack).
pub const MAX_PASSWORD: usize = 256;

/// Trims and checks an email address: an address by RFC 5322 as lettre reads it (so the payout
/// mail can be sent to it), at most [`MAX_EMAIL`] characters, with a dot in its domain.
pub fn parse_email(raw: &str) -> Result<String> {
    let email = raw.trim();
    if email.len() > MAX_EMAIL {
        return Err(Error::Invalid(format!("email must be at most {MAX_EMAIL} characters")));
    }
    ates_web::text::check("email", email, TextKind::Line).map_err(Error::Invalid)?;
    let valid = lettre::Address::from_str(email).is_ok_and(|address| {
        let domain = address.domain();
        domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    });
    if valid {
        Ok(email.to_owned())
    } else {
        Err(Error::Invalid(format!("`{email}` is not an email address like popug@example.com")))
    }
}

/// Trims and checks a full name: not blank, at most [`MAX_NAME`] characters, one line.
pub fn parse_full_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::Invalid("full_name must not be blank".into()));
    }
    if name.chars().count() > MAX_NAME {
        return Err(Error::Invalid(format!("full_name must be at most {MAX_NAME} characters")));
    }
    ates_web::text::check("full_name", name, TextKind::Line).map_err(Error::Invalid)?;
    Ok(name.to_owned())
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<()> {
    let length = password.chars().count();
    if length < MIN_PASSWORD {
        return Err(Error::Invalid(format!("password must be at least {MIN_PASSWORD} characters")));
    }
    if length > MAX_PASSWORD {
        return Err(Error::Invalid(format!("password must be at most {MAX_PASSWORD} characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(parse_email("  Popug@Example.com ").unwrap(), "Popug@Example.com");
        for bad in
            ["", "popug", "@example.com", "popug@", "popug@example", "a b@example.com", "a@b@c.d", "a@.com"]
        {
            assert!(parse_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_must_not_be_blank_or_huge() {
        assert_eq!(parse_full_name(" Pop Ug ").unwrap(), "Pop Ug");
        assert!(parse_full_name("   ").is_err());
        assert!(parse_full_name(&"x".repeat(201)).is_err());
        assert!(parse_full_name("Pop\u{0}Ug").is_err());
        assert!(parse_full_name("Pop\u{202E}Ug").is_err());
    }

    #[test]
    fn passwords_have_a_sane_length() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(257)).is_err());
    }
}
