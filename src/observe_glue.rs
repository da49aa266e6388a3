//! Wiring of metering into this node: the usage report learns functions' architectures and
//! tags from the control plane through `FunctionDirectory`.

use std::collections::BTreeMap;
use std::sync::Arc;

use updraft_control::ControlPlane;
use updraft_observe::FunctionDirectory;

/// Answers from the control plane's in-memory view.
pub struct Directory(pub Arc<ControlPlane>);

impl FunctionDirectory for Directory {
    fn architecture(&self, account_id: &str, function: &str) -> Option<String> {
        let d = self.0.get_function(account_id, function, None).ok()?;
        d.config.architectures.first().cloned()
    }

    fn tags(&self, account_id: &str, function: &str) -> BTreeMap<String, String> {
        self.0
            .get_function(account_id, function, None)
            .map(|d| d.tags)
            .unwrap_or_default()
    }
}
