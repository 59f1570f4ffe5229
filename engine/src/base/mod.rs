//! The ground floor: concepts every layer of the engine uses (a key, an aggregate function, the
//! context a subtask's user code is created with, the error user code returns). Everything else
//! (state, operators, sources, sinks, the runtime) builds on these; nothing here imports a layer
//! above, so the layers point one way.

pub mod aggregate;
pub mod codec;
pub mod failure;
pub mod key;
pub mod subtask;

pub use aggregate::{AggregateFunction, MergingAggregateFunction};
pub use codec::{Codec, CodecError};
pub use failure::{OperatorFailure, UserError};
pub use key::Key;
pub use subtask::SubtaskContext;
