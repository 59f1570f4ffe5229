//! Channels between tasks: credit-based flow control and partitioners.
//!
//! In one process a channel is the pair of a sender's `CreditSender` and a receiver's
//! `GateCredits`, with frames moved by ownership between task actors; a remote channel (the net
//! crate, later) keeps the same credit protocol and encodes frames at the process boundary.

pub mod credit;
pub mod partitioner;
pub mod transport;
