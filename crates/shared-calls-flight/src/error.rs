use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Why a call produced no value.
///
/// Cloning is cheap: every waiter of a failed flight receives a clone of the
/// same error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlightError {
    /// The work panicked while it was being polled. Every waiter of that
    /// flight receives this error; the key is free for a new flight at once.
    Panicked {
        /// The panic's message, when its payload was a string.
        message: Arc<str>,
    },
    /// The key already had as many waiters as
    /// [`GroupBuilder::max_waiters`](crate::GroupBuilder::max_waiters) allows;
    /// the call was refused at once instead of queueing.
    TooManyWaiters,
}

impl FlightError {
    /// The error for a caught panic's payload, keeping its message when the
    /// payload is a string.
    pub fn from_panic(payload: &(dyn Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            Arc::from(*s)
        } else if let Some(s) = payload.downcast_ref::<String>() {
            Arc::from(s.as_str())
        } else {
            Arc::from("Box<dyn Any>")
        };
        FlightError::Panicked { message }
    }
}

impl fmt::Display for FlightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlightError::Panicked { message } => write!(f, "the shared call panicked: {message}"),
            FlightError::TooManyWaiters => f.write_str("too many callers are waiting for this key"),
        }
    }
}

impl std::error::Error for FlightError {}
