//! Opaque cursors for keyset pagination over (created_at, task_id), newest first.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Where the next page starts: after this task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last task's creation time.
    pub created_at: DateTime<Utc>,
    /// The last task's id.
    pub task_id: Uuid,
}

impl Cursor {
    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.created_at.timestamp_micros(), self.task_id))
    }

    /// Reads a cursor a client sent back.
    pub fn decode(text: &str) -> Result<Self, String> {
        let invalid = || "The cursor is not one this API returned; start again without it.".to_owned();
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
        let created_at = micros.parse().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(invalid)?;
        Ok(Cursor { created_at, task_id: id.parse().map_err(|_| invalid())? })
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn a_cursor_survives_the_round_trip_and_garbage_is_refused() {
        let cursor = Cursor { created_at: chrono::Utc::now(), task_id: uuid::Uuid::new_v4() };
        let back = Cursor::decode(&cursor.encode()).unwrap();
        assert_eq!(back.task_id, cursor.task_id);
        assert_eq!(back.created_at.timestamp_micros(), cursor.created_at.timestamp_micros());
        assert!(Cursor::decode("nonsense!").is_err());
        assert!(Cursor::decode("aGVsbG8").is_err());
    }
}
