//! Updraft's SQS-compatible queue service.
//!
//! - [`Queues`] (`service.rs`): every queue of the node and the Rust API over them
//!   (`send`, `receive`, `delete`, `change_visibility`, ...), called by the wire modules and
//!   usable in-process (an event source mapping's poller) without HTTP.
//! - `queue.rs`: one queue's messages and its visibility, FIFO and redrive rules, pure.
//! - `model.rs`: queue settings and message attributes with SQS's checks; `md5.rs` the digests
//!   clients verify; `receipt.rs` unforgeable receipt handles; `writer.rs` group commit into
//!   the queue database (`updraft_store::queues`).
//! - `ops.rs`: each SQS operation over a JSON-protocol-shaped request; `wire_json.rs` (JSON 1.0,
//!   `X-Amz-Target: AmazonSQS.*`) and `wire_query.rs` (form-encoded `Action=`, XML answers)
//!   translate the two protocols to and from that shape.
//!
//! Architecture invariant: no HTTP crate; the front door hands over the authenticated account,
//! the host and the body, and gets back a status, headers and bytes ([`WireResponse`]).

pub mod error;
pub mod md5;
pub mod model;
mod ops;
mod policy;
pub mod queue;
mod receipt;
mod service;
pub mod wire_json;
pub mod wire_query;
mod writer;

pub use error::QueueError;
pub use service::{Delivered, MoveTask, Queues, ReceiveInput, SendInput, SendOutput, now_ms};

/// Who is calling and how they reached the node.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The authenticated account.
    pub account: String,
    /// The caller's access key (SQS's `SenderId`).
    pub access_key_id: String,
    /// The `Host` the request was sent to (queue URLs are built from it).
    pub host: String,
    pub request_id: String,
}

/// An answer for the front door to send as it is.
#[derive(Debug, Clone)]
pub struct WireResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}
