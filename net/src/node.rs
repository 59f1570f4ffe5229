//! The identity of a worker process in the cluster.
//!
//! A [`NodeId`] names one worker process; the handshake proves it (with the cluster secret) before
//! any message of a connection is delivered, and the mesh uses it to decide which side of a pair
//! dials (the lower id) and which accepts.

use std::fmt;

/// A worker process of the cluster, as named in the cluster's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.0)
    }
}
