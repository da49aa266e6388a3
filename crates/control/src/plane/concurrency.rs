//! Reserved and provisioned concurrency, and the account-wide sums both are checked against.
//!
//! Every caller-chosen count is range-checked before it enters a sum, and sums are formed in
//! `u64` with checked additions, so no value can wrap the account check.

use super::*;

/// One version a function wants provisioned, resolved as for an invocation.
#[derive(Debug, Clone)]
pub struct ProvisionedTarget {
    pub resolved: Resolved,
    /// Environments wanted: the version's own configuration plus those of aliases whose primary
    /// version it is.
    pub count: u32,
}

impl ControlPlane {
    /// Concurrency reserved by the account's functions other than `except`. A sum of `u32`s in
    /// a `u64`, so it cannot overflow whatever a stored document holds.
    pub(super) fn reserved_total(state: &State, account_id: &str, except: &str) -> u64 {
        state
            .iter()
            .filter(|(k, _)| k.account_id == account_id && k.name != except)
            .filter_map(|(_, e)| e.reserved_concurrency)
            .map(u64::from)
            .sum()
    }

    /// Concurrency set aside by the account's functions other than `except`: a function's
    /// reserved concurrency, or its provisioned concurrency when it reserves none.
    pub(super) fn committed_total(state: &State, account_id: &str, except: &str) -> u64 {
        state
            .iter()
            .filter(|(k, _)| k.account_id == account_id && k.name != except)
            .map(|(_, e)| {
                u64::from(
                    e.reserved_concurrency
                        .unwrap_or_else(|| provisioned::total(&e.provisioned)),
                )
            })
            .sum()
    }

    /// Whether setting aside `amount` more for one function, on top of `others` set aside by the
    /// account's other functions, keeps the account's unreserved minimum.
    pub(super) fn fits_account(&self, others: u64, amount: u32) -> bool {
        let spare = self
            .config
            .account_concurrency
            .saturating_sub(MIN_UNRESERVED_CONCURRENCY);
        others
            .checked_add(u64::from(amount))
            .is_some_and(|total| total <= u64::from(spare))
    }

    /// `PutFunctionConcurrency`.
    pub fn put_concurrency(
        &self,
        account_id: &str,
        function_name: &str,
        reserved: i64,
    ) -> Result<u32> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        let reserved = validate::reserved_concurrency(
            reserved,
            self.config.account_concurrency,
            MIN_UNRESERVED_CONCURRENCY,
        )?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let provisioned_here = provisioned::total(&entry.provisioned);
        if reserved < provisioned_here {
            return Err(ControlError::invalid(format!(
                "ReservedConcurrentExecutions ({reserved}) must not be less than the function's provisioned concurrency ({provisioned_here})."
            )));
        }
        let others = Self::committed_total(&state, account_id, &r.name);
        if !self.fits_account(others, reserved) {
            return Err(validate::unreserved_minimum(
                "ReservedConcurrentExecutions",
                MIN_UNRESERVED_CONCURRENCY,
            ));
        }
        let mut entry = entry.clone();
        entry.reserved_concurrency = Some(reserved);
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        let change = Change::Updated {
            function_arn: self.arn(account_id, &r.name),
            latest_revision: entry.latest.revision_id.clone(),
        };
        state.insert(key, entry);
        drop(state);
        self.notify(change);
        Ok(reserved)
    }

    /// `GetFunctionConcurrency`.
    pub fn get_concurrency(&self, account_id: &str, function_name: &str) -> Result<Option<u32>> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        Ok(entry.reserved_concurrency)
    }

    /// `DeleteFunctionConcurrency`.
    pub fn delete_concurrency(&self, account_id: &str, function_name: &str) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        let latest_revision = self.change_doc(account_id, &r.name, |e| {
            e.reserved_concurrency = None;
            Ok(e.latest.revision_id.clone())
        })?;
        self.notify(Change::Updated {
            function_arn: self.arn(account_id, &r.name),
            latest_revision,
        });
        Ok(())
    }

    /// The version number or alias a provisioned-concurrency operation names (required; never
    /// `$LATEST`) and the version it provisions.
    pub(super) fn provisioned_qualifier(
        &self,
        account_id: &str,
        entry: &Entry,
        r: &FunctionRef,
        param: Option<&str>,
    ) -> Result<(String, String)> {
        let q = Self::qualifier(r, param)?.ok_or_else(|| {
            ControlError::invalid(
                "A qualifier (a function version or an alias) is required for provisioned concurrency.",
            )
        })?;
        if q == "$LATEST" {
            return Err(ControlError::invalid(provisioned::UNPUBLISHED));
        }
        let version = provisioned::target_version(&q, &entry.aliases)
            .ok_or_else(|| self.not_found(account_id, &r.name, Some(&q)))?;
        if version == "$LATEST" {
            return Err(ControlError::invalid(provisioned::UNPUBLISHED));
        }
        let exists =
            parse_version_number(&version).is_some_and(|n| entry.versions.contains_key(&n));
        if !exists {
            return Err(self.not_found(account_id, &r.name, Some(&q)));
        }
        Ok((q, version))
    }

    pub(super) fn provisioned_view(
        &self,
        account_id: &str,
        entry: &Entry,
        q: &str,
        config: &ProvisionedConfig,
    ) -> ProvisionedView {
        let name = &entry.latest.name;
        ProvisionedView {
            function_name: name.clone(),
            qualifier: q.to_string(),
            function_arn: self.qualified_arn(account_id, name, q),
            version: provisioned::target_version(q, &entry.aliases).unwrap_or_default(),
            config: config.clone(),
        }
    }

    /// `PutProvisionedConcurrencyConfig`.
    pub fn put_provisioned(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        requested: i64,
    ) -> Result<ProvisionedView> {
        let r = self.parse(account_id, function_name)?;
        let requested = provisioned::check_count(requested)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let (q, version) = self.provisioned_qualifier(account_id, entry, &r, qualifier)?;
        provisioned::check_overlap(&q, &version, &entry.provisioned, &entry.aliases)?;
        let mut entry = entry.clone();
        entry.provisioned.insert(
            q.clone(),
            ProvisionedConfig {
                requested,
                last_modified: now_lambda(),
            },
        );
        let total = provisioned::total(&entry.provisioned);
        match entry.reserved_concurrency {
            Some(reserved) if total > reserved => {
                return Err(ControlError::invalid(format!(
                    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function ({reserved})."
                )));
            }
            Some(_) => {}
            None => {
                let others = Self::committed_total(&state, account_id, &r.name);
                if !self.fits_account(others, total) {
                    return Err(validate::unreserved_minimum(
                        "ConcurrentExecutions",
                        MIN_UNRESERVED_CONCURRENCY,
                    ));
                }
            }
        }
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        let view = self.provisioned_view(account_id, &entry, &q, &entry.provisioned[&q]);
        state.insert(key, entry);
        drop(state);
        self.notify(Change::Provisioned {
            function_arn: self.arn(account_id, &r.name),
        });
        Ok(view)
    }

    /// `GetProvisionedConcurrencyConfig`; `None` when the qualifier has no configuration.
    pub fn get_provisioned(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<ProvisionedView>> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let (q, _) = self.provisioned_qualifier(account_id, entry, &r, qualifier)?;
        Ok(entry
            .provisioned
            .get(&q)
            .map(|c| self.provisioned_view(account_id, entry, &q, c)))
    }

    /// `DeleteProvisionedConcurrencyConfig` (deleting a configuration that does not exist
    /// succeeds).
    pub fn delete_provisioned(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let (q, _) = self.provisioned_qualifier(account_id, entry, &r, qualifier)?;
        if !entry.provisioned.contains_key(&q) {
            return Ok(());
        }
        let mut entry = entry.clone();
        entry.provisioned.remove(&q);
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        state.insert(key, entry);
        drop(state);
        self.notify(Change::Provisioned {
            function_arn: self.arn(account_id, &r.name),
        });
        Ok(())
    }

    /// `ListProvisionedConcurrencyConfigs`.
    pub fn list_provisioned(
        &self,
        account_id: &str,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<ProvisionedView>> {
        max_items_at_most(max_items, 50)?;
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let items: Vec<(String, ProvisionedView)> = entry
            .provisioned
            .iter()
            .map(|(q, c)| (q.clone(), self.provisioned_view(account_id, entry, q, c)))
            .collect();
        drop(state);
        paginate(items, marker, max_items)
    }

    pub(super) fn targets_of(&self, key: &FunctionKey, entry: &Entry) -> Vec<ProvisionedTarget> {
        let mut out = Vec::new();
        for (version, count) in provisioned::per_version(&entry.provisioned, &entry.aliases) {
            let Some(config) = parse_version_number(&version).and_then(|n| entry.versions.get(&n))
            else {
                continue;
            };
            let Some(code_dir) = self.code.tree_dir(&config.code.sha256_hex) else {
                tracing::error!(
                    "invalid code address in configuration of {}:{version}",
                    key.name
                );
                continue;
            };
            out.push(ProvisionedTarget {
                resolved: Resolved {
                    account_id: key.account_id.clone(),
                    function_arn: self.arn(&key.account_id, &key.name),
                    config: config.clone(),
                    executed_version: version,
                    reserved_concurrency: entry.reserved_concurrency,
                    code_dir,
                    opt_dir: self.opt_dir_of(config),
                },
                count,
            });
        }
        out
    }

    /// What a function wants provisioned, by version (empty when the function is gone or wants
    /// nothing). `function_arn` is the unqualified ARN a [`Change`] carries.
    pub fn provisioned_targets(&self, function_arn: &str) -> Vec<ProvisionedTarget> {
        let Ok(r) = parse_function_ref(function_arn) else {
            return Vec::new();
        };
        let Some(account_id) = r.account_id else {
            return Vec::new();
        };
        let state = self.read();
        let key = FunctionKey {
            account_id,
            name: r.name,
        };
        state
            .get(&key)
            .map(|e| self.targets_of(&key, e))
            .unwrap_or_default()
    }

    /// Unqualified ARNs of every function with provisioned concurrency (to provision on start).
    pub fn provisioned_functions(&self) -> Vec<String> {
        let state = self.read();
        let mut out: Vec<String> = state
            .iter()
            .filter(|(_, e)| !e.provisioned.is_empty())
            .map(|(k, _)| self.arn(&k.account_id, &k.name))
            .collect();
        out.sort();
        out
    }
}
