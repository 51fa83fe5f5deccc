//! Auth: sessions, accounts, tokens and what other services make of them.

mod accounts;
mod freshness;
mod logs;
mod ops;
mod passwords;
mod sessions;
mod tokens;
