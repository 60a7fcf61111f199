//! [`AbortOnDrop`]: ties a background task's life to a value's.

/// Aborts a task when dropped, so a helper task (the monitor's connection,
/// the progress line) never outlives what it serves.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
