//! The invoke path's reads: a function name and qualifier to the configuration that runs.
//!
//! Memory only (the published [`super::State`]), never the store: `resolve` runs on the async
//! runtime's workers for every invocation.

use super::*;

/// A function resolved for invocation.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub account_id: String,
    pub function_arn: String,
    pub config: Arc<FunctionConfig>,
    /// The version that runs (an alias resolves to one of its versions).
    pub executed_version: String,
    pub reserved_concurrency: Option<u32>,
    pub code_dir: PathBuf,
    /// The merged tree of the function's layers, mounted at `/opt`.
    pub opt_dir: Option<PathBuf>,
}

impl ControlPlane {
    /// Resolves a function for invocation, choosing a version by alias weights.
    ///
    /// `caller_account` may invoke another account's function (named by ARN) when that
    /// function's resource policy, or its qualifier's, allows `lambda:InvokeFunction` to it.
    pub fn resolve(
        &self,
        caller_account: &str,
        function_name: &str,
        qualifier: Option<&str>,
        random: f64,
    ) -> Result<Resolved> {
        let owner = match parse_function_ref(function_name)?.account_id {
            Some(a) if a != caller_account => a,
            _ => caller_account.to_string(),
        };
        let account_id = owner.as_str();
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name).map_err(|e| {
            if owner != caller_account {
                self.cross_account_denied(caller_account, account_id, &r.name)
            } else {
                e
            }
        })?;
        if owner != caller_account {
            let mut policy = entry.policies.get("").cloned().unwrap_or_default();
            if let Some(p) = q.as_deref().and_then(|q| entry.policies.get(q)) {
                policy.statements.extend(p.statements.iter().cloned());
            }
            if !crate::policy::allows(
                &policy,
                "lambda:InvokeFunction",
                Some(caller_account),
                None,
                None,
                None,
            ) {
                return Err(self.cross_account_denied(caller_account, account_id, &r.name));
            }
        }
        let version = match q.as_deref() {
            None | Some("$LATEST") => "$LATEST".to_string(),
            Some(v) if parse_version_number(v).is_some() => v.to_string(),
            Some(a) => {
                let alias = entry
                    .aliases
                    .get(a)
                    .ok_or_else(|| self.not_found(account_id, &r.name, Some(a)))?;
                let mut pick = alias.function_version.clone();
                let mut acc = 0.0;
                for (v, w) in &alias.additional_version_weights {
                    acc += w;
                    if random < acc {
                        pick = v.clone();
                        break;
                    }
                }
                pick
            }
        };
        let config = self.config_for(account_id, entry, Some(&version))?;
        let code_dir = self
            .code
            .tree_dir(&config.code.sha256_hex)
            .ok_or_else(|| ControlError::service("invalid code address in configuration"))?;
        let opt_dir = if config.layers.is_empty() {
            None
        } else {
            self.opt_dir_of(&config)
        };
        Ok(Resolved {
            account_id: account_id.to_string(),
            function_arn: self.arn(account_id, &r.name),
            config,
            executed_version: version,
            reserved_concurrency: entry.reserved_concurrency,
            code_dir,
            opt_dir,
        })
    }

    pub(super) fn cross_account_denied(
        &self,
        caller: &str,
        owner: &str,
        name: &str,
    ) -> ControlError {
        ControlError::new(
            ErrorKind::AccessDenied,
            format!(
                "User: arn:aws:iam::{caller}:root is not authorized to perform: lambda:InvokeFunction on resource: {} because no resource-based policy allows the lambda:InvokeFunction action",
                self.arn(owner, name)
            ),
        )
    }
}
