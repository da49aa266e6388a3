//! Updraft's CloudWatch Logs subset: the log groups and streams functions write, read back with
//! the Logs API that `aws logs tail`, `filter-log-events` and `get-log-events` use.
//!
//! Components:
//! - [`layout`]: where groups and streams live on disk (`<logs>/<account>/<group dir>/<stream>.log`,
//!   the layout the engine writes), and CloudWatch's name rules;
//! - [`read`]: reading stream files (one `<epoch ms> <message>` line per event), bisection on
//!   timestamps;
//! - [`store`]: [`LogStore`], every operation over the files, confined to one account;
//! - [`filter`]: CloudWatch filter patterns (terms, phrases, `-`/`?`, JSON and space-delimited);
//! - [`sweeper`]: retention per group and the node-wide cap, oldest streams first, with counters;
//! - [`budget`]: the write allowance the sweeper grants and writers take from, dropping and
//!   counting what does not fit;
//! - [`wire`]: the JSON 1.1 protocol (`X-Amz-Target: Logs_20140328.*`).
//!
//! Architecture invariant: no HTTP crate and no engine: the engine writes the files, this crate
//! reads, sweeps and answers for them; only [`wire`] knows CloudWatch's field names.

pub mod budget;
pub mod filter;
pub mod layout;
pub mod read;
pub mod store;
pub mod sweeper;
pub mod wire;

pub use filter::Filter;
pub use store::{LogStore, LogsError};
