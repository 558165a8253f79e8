//! Where a request came from, as far as the socket and the headers tell:
//! the fences of the demo mailbox ([`crate::demo`]) and of `/metrics`
//! ([`crate::metrics`]) answer only this machine.

use std::net::SocketAddr;

use axum::http::HeaderMap;

/// Whether a connection came from this machine: a loopback address
/// (`127.0.0.0/8`, `::1`, or IPv4 loopback mapped into IPv6). `None` (no
/// socket, a router driven in process) is not.
pub fn is_loopback_peer(peer: Option<SocketAddr>) -> bool {
    peer.is_some_and(|p| p.ip().to_canonical().is_loopback())
}

/// Headers a proxy adds: a request that carries one came from elsewhere,
/// whatever the socket's peer is.
pub const FORWARDED: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// Whether a request came from this machine with no proxy in between: a
/// loopback peer and none of the [`FORWARDED`] headers.
pub fn is_local(peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    is_loopback_peer(peer) && !FORWARDED.iter().any(|h| headers.contains_key(*h))
}
