//! Updraft's EventBridge service: event buses, rules with event patterns or schedules, targets,
//! `PutEvents`, and the scheduler that fires scheduled rules.
//!
//! Components:
//! - [`model`]: the stored documents (buses, rules with their targets) and ARNs;
//! - [`schedule`]: `rate(…)` and six-field `cron(…)` expressions and their next fire times;
//! - [`transform`]: what a target receives (`Input`, `InputPath`, `InputTransformer`);
//! - [`delivery`]: the narrow traits through which matched events leave this crate (the
//!   durable delivery path, the functions' resource policies);
//! - [`wire`]: the JSON 1.1 protocol (`X-Amz-Target: AWSEvents.*`);
//! - [`service`]: [`EventBridge`], every operation over an in-memory view with write-through
//!   persistence, and [`scheduler`]: the task that fires due schedules.
//!
//! Content filtering itself is `updraft-pattern`, shared with the other event sources.

pub mod delivery;
pub mod model;
pub mod schedule;
pub mod scheduler;
pub mod service;
pub mod transform;
pub mod wire;

pub use delivery::{BoxFuture, Delivery, DeliveryError, EventDelivery, FunctionPermissions};
pub use service::{EbError, EbErrorKind, EventBridge, NewEvent, PutOutcome};
