//! Updraft's Lambda control plane.
//!
//! [`ControlPlane`] validates requests with Lambda's limits, keeps every function, version and
//! alias in memory (so the invoke path resolves a function without touching the database),
//! writes each change through to the durable [`updraft_store::Store`] before answering, and
//! stores code content-addressed in the [`code::CodeStore`].
//!
//! Components:
//! - [`accounts`]: accounts and their access keys, secrets sealed with the node's master key;
//! - [`arn`]: the name / partial ARN / full ARN forms of `FunctionName`;
//! - [`validate`]: Lambda's limits and patterns;
//! - [`model`]: the domain types and their stored documents;
//! - [`code`]: the code store and safe extraction of hostile zips;
//! - [`url`]: Function URL configurations;
//! - [`layer`]: layer versions, their permissions and what a function keeps of them;
//! - [`policy`]: resource-based policies and their evaluation;
//! - [`provisioned`]: provisioned concurrency configurations;
//! - [`error`]: errors by Lambda error category, with no HTTP in sight.

pub mod accounts;
pub mod arn;
pub mod code;
pub mod code_gc;
pub mod error;
pub mod layer;
pub mod model;
pub mod policy;
pub mod provisioned;
pub mod url;
pub mod validate;

mod plane;

pub use error::{ControlError, ErrorKind, Result};
pub use plane::*;
