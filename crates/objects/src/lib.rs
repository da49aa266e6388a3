//! Updraft's object store, speaking S3's REST API (rest-xml).
//!
//! - [`store`]: the index in `<data-dir>/objects.db` (buckets, versions, multipart uploads);
//! - [`blobs`]: bodies on disk, content-addressed by SHA-256, written atomically;
//! - [`chunked`] and [`checksum`]: the `aws-chunked` upload encoding and the trailing checksums
//!   verified while a body streams in;
//! - [`wire`]: S3's operations over HTTP requests (path-style and virtual-host addressing),
//!   bodies streamed to and from disk;
//! - [`xml`]: the small XML reader and writer the wire module needs.
//!
//! Architecture invariant: no Lambda or SQS types; other services are reached through the
//! traits in [`notify`] and [`access`], implemented by the binary's glue.

pub mod blobs;
pub mod checksum;
pub mod chunked;
pub mod error;
pub mod store;
pub mod xml;

pub use error::S3Error;
pub use store::ObjectStore;
pub mod notify;
pub mod policy;
mod reader;
pub mod wire;

pub use wire::{S3Request, S3Service};

/// The hex SHA-256 of an empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
