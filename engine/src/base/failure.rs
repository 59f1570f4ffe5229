//! What user code returns when it fails, and what the runtime records about a failure.

/// An error returned by user code (a function, a source, a sink); it fails the job.
pub type UserError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong inside an operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorFailure {
    /// User code panicked; the panic message.
    #[error("panicked: {0}")]
    Panicked(String),
    /// User code returned an error.
    #[error("{0}")]
    Failed(UserError),
}

impl OperatorFailure {
    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> OperatorFailure {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-text panic payload".to_string());
        OperatorFailure::Panicked(message)
    }
}
