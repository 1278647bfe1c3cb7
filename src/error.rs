//! The crate's error type. Variants are named by what the caller does with
//! them; the client-facing text comes from `Display` behind `-ERR `.

use std::time::Duration;

/// Which backend an error came from, so client errors can name it.
pub type Backend = &'static str;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend could not be reached or refused service; try later.
    #[error("{backend} unavailable: {detail}")]
    Unavailable { backend: Backend, detail: String },
    /// The backend did not answer within its configured timeout.
    #[error("{backend} timed out after {}", humantime::format_duration(*after))]
    Timeout { backend: Backend, after: Duration },
    /// The connection was lost during COMMIT: the write may or may not have
    /// been committed (the one error that does not mean "nothing written").
    #[error("{backend} commit outcome unknown: {detail}")]
    CommitUnknown { backend: Backend, detail: String },
    /// The backend refused the request for good (constraint, bad data):
    /// retrying the same request cannot succeed.
    #[error("{backend} rejected the write: {detail}")]
    Rejected { backend: Backend, detail: String },
    /// Stored bytes that cannot be decoded; never retried.
    #[error("corrupt data in {backend}: {detail}")]
    Corruption { backend: Backend, detail: String },
    /// A configuration that cannot run; reported at start or reload.
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True when the same request may succeed later without any change.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. })
    }

    pub fn unavailable(backend: Backend, detail: impl std::fmt::Display) -> Error {
        Error::Unavailable {
            backend,
            detail: detail.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `fut` with a deadline, turning expiry into `Error::Timeout`.
pub async fn with_timeout<T>(
    backend: Backend,
    after: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(after, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout { backend, after }),
    }
}

impl Error {
    /// A copy for the other waiters of a shared (single-flight) read; I/O
    /// errors, which cannot be cloned, become `Unavailable` with their text.
    pub fn shared(&self) -> Error {
        match self {
            Error::Unavailable { backend, detail } => Error::Unavailable {
                backend,
                detail: detail.clone(),
            },
            Error::Timeout { backend, after } => Error::Timeout {
                backend,
                after: *after,
            },
            Error::CommitUnknown { backend, detail } => Error::CommitUnknown {
                backend,
                detail: detail.clone(),
            },
            Error::Rejected { backend, detail } => Error::Rejected {
                backend,
                detail: detail.clone(),
            },
            Error::Corruption { backend, detail } => Error::Corruption {
                backend,
                detail: detail.clone(),
            },
            Error::Config(s) => Error::Config(s.clone()),
            Error::Io(e) => Error::unavailable("disk", e),
        }
    }
}
