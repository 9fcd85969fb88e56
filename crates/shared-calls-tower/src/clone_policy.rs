//! The policy for services whose responses can be cloned.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use shared_calls_cache::Fetch;
use tower_service::Service;

use crate::policy::{Admission, Leader, Policy, Rejected, Reply, ServicePolicy};

/// Shares and stores the inner service's responses by cloning them: for a
/// database client, a typed RPC stub, any service whose `Response: Clone`.
///
/// `K` is the key, `T` the response, `E` the inner service's error. Errors
/// need not be `Clone`: they are shared as [`SharedError::Inner`] in an
/// `Arc`. Every successful response is stored for the cache's TTL.
pub struct CloneResponses<K, T, E> {
    _types: PhantomData<Types<K, T, E>>,
}

/// Marks the types without owning values of them (always `Send + Sync`).
type Types<K, T, E> = fn() -> (K, T, E);

impl<K, T, E> Default for CloneResponses<K, T, E> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<K, T, E> Clone for CloneResponses<K, T, E> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<K, T, E> fmt::Debug for CloneResponses<K, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CloneResponses")
    }
}

/// The error of a service wrapped with [`CloneResponses`]: the inner
/// service's error, shared by every caller of the failed flight, or why the
/// caller received no answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum SharedError<E> {
    /// The inner service failed.
    Inner(Arc<E>),
    /// The inner service panicked, or too many callers waited for the key.
    Rejected(Rejected),
}

impl<E> Clone for SharedError<E> {
    fn clone(&self) -> Self {
        match self {
            SharedError::Inner(error) => SharedError::Inner(error.clone()),
            SharedError::Rejected(rejected) => SharedError::Rejected(rejected.clone()),
        }
    }
}

impl<E: fmt::Display> fmt::Display for SharedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedError::Inner(error) => error.fmt(f),
            SharedError::Rejected(rejected) => rejected.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for SharedError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SharedError::Inner(error) => Some(&**error),
            SharedError::Rejected(rejected) => Some(rejected),
        }
    }
}

impl<K, T, E> Policy for CloneResponses<K, T, E>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    type Key = K;
    type Shared = T;
    type Failure = Arc<E>;
}

impl<Req, S, K, T, E> ServicePolicy<Req, S> for CloneResponses<K, T, E>
where
    S: Service<Req, Response = T, Error = E>,
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    type Response = T;
    type Error = SharedError<E>;
    type Context = ();
    type Share = std::future::Ready<Result<Fetch<T>, Arc<E>>>;

    fn admit(&self, _: &Req) -> Admission<()> {
        Admission::Share(())
    }

    fn share(&self, result: Result<T, E>, _: &(), _: Leader<T>) -> Self::Share {
        std::future::ready(result.map(Fetch::value).map_err(Arc::new))
    }

    fn respond(&self, reply: Reply<'_, Req, S, Self>, _: &()) -> Result<T, SharedError<E>> {
        match reply {
            Reply::Hit { shared, .. } => Ok(shared),
            Reply::Shared { shared, .. } => Ok(shared.clone()),
            Reply::Failed { failure, .. } => Err(SharedError::Inner(failure.clone())),
            Reply::Rejected(rejected) => Err(SharedError::Rejected(rejected)),
            Reply::Own { result, .. } => {
                result.map_err(|error| SharedError::Inner(Arc::new(error)))
            }
        }
    }
}
