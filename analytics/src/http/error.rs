//! The one place analytics' errors become problem+json.

/// The one place analytics' errors become problem+json.
impl From<crate::Error> for ates_web::Error {
    fn from(error: crate::Error) -> Self {
        match error {
            error @ crate::Error::NoTaskCompleted { .. } => {
                ates_web::Problem::not_found(format!("{error}.")).into()
            }
            crate::Error::Database(e) => e.into(),
        }
    }
}
