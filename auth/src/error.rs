//! Auth's own errors: what every store and rule below `http/` returns. `http/error.rs` turns
//! them into problem+json answers, once.

use uuid::Uuid;

/// Something auth could not do: a business outcome the caller can act on, or a failure of
/// the database, the outbox or the crypto underneath.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field breaks a rule; the sentence says which and how.
    #[error("{0}")]
    Invalid(String),
    /// Another account has this email, whatever its case.
    #[error("An account with the email {0} already exists.")]
    EmailTaken(String),
    /// No account has this id.
    #[error("There is no account {0}.")]
    NoSuchAccount(Uuid),
    /// The change would leave no active admin.
    #[error("This is the last active admin; make another account an admin first.")]
    LastAdmin,
    /// Too many password hashes are waiting for a core.
    #[error("Too many sign-ins at once; try again in a second.")]
    Busy,
    /// The current password given to change it is wrong.
    #[error("The current password is wrong.")]
    WrongPassword,
    /// Unknown email or wrong password: the two are deliberately told apart nowhere.
    #[error("The email or password is wrong.")]
    BadCredentials,
    /// The account may not sign in.
    #[error("This account has been deactivated.")]
    Deactivated,
    /// Too many sign-in attempts for the account or the client address.
    #[error("Too many sign-in attempts; try again in {retry_after} seconds.")]
    TooManyAttempts {
        /// Seconds until the next attempt may succeed.
        retry_after: u64,
    },
    /// The refresh token was never issued (or its account is gone).
    #[error("This refresh token is not known; sign in again.")]
    UnknownRefreshToken,
    /// The refresh token's session was ended (sign-out, deactivation or a reuse).
    #[error("This session has ended; sign in again.")]
    SessionEnded,
    /// A used refresh token came back: its whole session has just been revoked.
    #[error("This refresh token was already used, so its session has been ended for safety; sign in again.")]
    RefreshTokenReused,
    /// The refresh token's lifetime is over.
    #[error("This session has expired; sign in again.")]
    SessionExpired,
    /// A stored role is not one of the four (the table's check constraint makes this a bug).
    #[error("a stored account has a bad role: {0}")]
    StoredRole(String),
    /// Hashing a password failed.
    #[error("cannot hash a password: {0}")]
    PasswordHash(String),
    /// Signing an access token failed.
    #[error("cannot sign an access token: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
    /// Writing an event to the outbox failed.
    #[error(transparent)]
    Outbox(#[from] ates_messaging::OutboxError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// `Result` with auth's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
