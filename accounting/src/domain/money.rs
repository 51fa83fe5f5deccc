//! Showing cents as dollars.

/// `12345` as `$123.45`, `-1500` as `-$15.00`.
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}${grouped}.{:02}", cents % 100)
}

#[cfg(test)]
mod tests {
    use super::dollars;

    #[test]
    fn cents_read_as_dollars() {
        assert_eq!(dollars(12345), "$123.45");
        assert_eq!(dollars(-1500), "-$15.00");
        assert_eq!(dollars(7), "$0.07");
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(123_456_789), "$1,234,567.89");
        assert_eq!(dollars(i64::MIN), "-$92,233,720,368,547,758.08");
    }
}
