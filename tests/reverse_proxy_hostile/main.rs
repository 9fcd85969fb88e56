//! Hostile clients and origins against `examples/reverse_proxy`, run as its
//! own process as users run it: running out of file descriptors, slow and
//! idle clients, silent origins, confusing `Host`s and authorities,
//! connection-specific headers and framing the proxy must not relay.

mod fixtures;

mod accept;
mod authority;
mod flags;
mod hop_by_hop;
mod timeouts;
