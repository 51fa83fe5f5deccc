//! Gathering messages into batches.

use std::time::Duration;

use futures::StreamExt;

/// Gathers a batch: the first message, then whatever arrives until the batch is full or
/// `linger` has passed since the first. Stops early at a stream error, returned alongside.
pub(crate) async fn collect<S, T, E>(
    first: Result<T, E>,
    messages: &mut S,
    size: usize,
    linger: Duration,
) -> (Vec<T>, Option<E>)
where
    S: futures::Stream<Item = Result<T, E>> + Unpin,
{
    let mut batch = Vec::with_capacity(size);
    let mut next = Some(first);
    let deadline = tokio::time::Instant::now() + linger;
    while let Some(item) = next.take() {
        match item {
            Ok(message) => batch.push(message),
            Err(error) => return (batch, Some(error)),
        }
        if batch.len() >= size {
            break;
        }
        next = tokio::time::timeout_at(deadline, messages.next()).await.ok().flatten();
    }
    (batch, None)
}
