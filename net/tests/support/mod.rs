//! What the loopback tests share: a recording `Inbound` handler that tests wait on with a
//! deadline, and the secret and options they use.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tethys_net::{CloseReason, ClusterSecret, ConnectionOptions, Inbound, Message, MessageKind, NodeId, PAYLOAD_ALIGNMENT};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a test waits for an event before it fails.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(20);

/// A message as the handler received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub peer: NodeId,
    pub kind: MessageKind,
    pub stream: u64,
    pub aux: u64,
    pub payload: Vec<u8>,
    pub aligned: bool,
}

#[derive(Debug, Default)]
pub struct Recorded {
    pub messages: Vec<Received>,
    pub closed: Vec<(NodeId, CloseReason)>,
}

/// An `Inbound` that records everything and wakes waiting tests.
pub struct Recorder {
    recorded: Mutex<Recorded>,
    changes: watch::Sender<u64>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder { recorded: Mutex::new(Recorded::default()), changes: watch::channel(0).0 })
    }

    pub fn recorded(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().expect("a test thread panicked")
    }

    fn changed(&self) {
        self.changes.send_modify(|version| *version += 1);
    }

    /// Waits until `condition` holds, or panics naming `what` at the deadline.
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&Recorded) -> bool) {
        let deadline = Instant::now() + EVENT_DEADLINE;
        let mut changes = self.changes.subscribe();
        loop {
            if condition(&self.recorded()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                let recorded = self.recorded();
                panic!("timed out waiting for {what}: {} messages and closes {:?} recorded", recorded.messages.len(), recorded.closed);
            }
        }
    }

    /// Waits for the `on_closed` of the connection with `peer` and returns its reason's text.
    pub async fn wait_closed(&self, peer: NodeId) -> String {
        self.wait_until("on_closed", |recorded| recorded.closed.iter().any(|(closed, _)| *closed == peer)).await;
        let recorded = self.recorded();
        let reasons: Vec<_> = recorded.closed.iter().filter(|(closed, _)| *closed == peer).collect();
        assert_eq!(reasons.len(), 1, "on_closed once per connection: {reasons:?}");
        format!("{:?}", reasons[0].1)
    }
}

impl Inbound for Recorder {
    fn on_message(&self, peer: NodeId, message: Message) {
        let aligned = (message.payload.as_ptr() as usize).is_multiple_of(PAYLOAD_ALIGNMENT);
        self.recorded().messages.push(Received {
            peer,
            kind: message.kind,
            stream: message.stream,
            aux: message.aux,
            payload: message.payload.to_vec(),
            aligned,
        });
        self.changed();
    }

    fn on_closed(&self, peer: NodeId, reason: CloseReason) {
        self.recorded().closed.push((peer, reason));
        self.changed();
    }
}

pub fn secret() -> ClusterSecret {
    "a cluster secret for the loopback tests".parse().expect("long enough")
}

pub fn other_secret() -> ClusterSecret {
    "another cluster's secret, not ours".parse().expect("long enough")
}

pub fn options() -> ConnectionOptions {
    ConnectionOptions { handshake_timeout: Duration::from_secs(10), ..ConnectionOptions::default() }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Payload bytes a test can recompute on arrival: a function of stream and sequence number.
pub fn payload_of(stream: u64, sequence: u64, len: usize) -> Vec<u8> {
    (0..len).map(|index| (stream as usize * 31 + sequence as usize * 7 + index) as u8).collect()
}
