//! Published versions and aliases (with their routing weights).

use super::*;

impl ControlPlane {
    pub(super) fn put_version_op(key: &FunctionKey, n: u64, cfg: &FunctionConfig) -> Result<Op> {
        Ok(Op::PutVersion {
            account_id: key.account_id.clone(),
            name: key.name.clone(),
            version: n,
            doc: serde_json::to_string(cfg).map_err(ControlError::service)?,
        })
    }

    /// Publishes `$LATEST` as the next version number in `entry`.
    pub(super) fn new_version(
        entry: &mut Entry,
        description: Option<String>,
    ) -> Arc<FunctionConfig> {
        entry.last_version += 1;
        let n = entry.last_version;
        let mut cfg = (*entry.latest).clone();
        cfg.version = n.to_string();
        cfg.revision_id = new_revision();
        cfg.last_modified = now_lambda();
        if let Some(d) = description {
            cfg.description = d;
        }
        let cfg = Arc::new(cfg);
        entry.versions.insert(n, cfg.clone());
        // Publishing changes $LATEST's revision too, as on Lambda.
        let mut latest = (*entry.latest).clone();
        latest.revision_id = new_revision();
        entry.latest = Arc::new(latest);
        cfg
    }

    /// Publishes unless `$LATEST` equals the newest version; returns the version config and,
    /// when one was created, its number for persistence.
    pub(super) fn publish_if_changed(
        &self,
        entry: &mut Entry,
        description: Option<String>,
    ) -> (Arc<FunctionConfig>, Option<(u64, Arc<FunctionConfig>)>) {
        if let Some((_, last)) = entry.versions.iter().next_back()
            && last.same_content(&entry.latest)
        {
            return (last.clone(), None);
        }
        let v = Self::new_version(entry, description);
        (v.clone(), Some((entry.last_version, v)))
    }

    /// `PublishVersion`.
    pub fn publish_version(
        &self,
        account_id: &str,
        function_name: &str,
        code_sha256: Option<&str>,
        description: Option<String>,
        revision_id: Option<&str>,
    ) -> Result<Arc<FunctionConfig>> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        if let Some(d) = &description {
            validate::description(d)?;
        }
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        if let Some(sha) = code_sha256
            && sha != entry.latest.code.code_sha256
        {
            return Err(ControlError::invalid(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                entry.latest.code.code_sha256
            )));
        }
        Self::check_revision(&entry.latest.revision_id, revision_id)?;
        let mut entry = entry.clone();
        let (cfg, created) = self.publish_if_changed(&mut entry, description);
        if let Some((n, v)) = &created {
            self.persist(&[
                Self::put_function_op(&key, &entry)?,
                Self::put_version_op(&key, *n, v)?,
            ])?;
            state.insert(key, entry);
        }
        Ok(cfg)
    }

    /// `ListVersionsByFunction`.
    pub fn list_versions(
        &self,
        account_id: &str,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Arc<FunctionConfig>>> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read();
        let (_, e) = self.lookup(&state, account_id, &r.name)?;
        let mut items = vec![(version_sort_key("", "$LATEST"), e.latest.clone())];
        for (n, v) in &e.versions {
            items.push((version_sort_key("", &n.to_string()), v.clone()));
        }
        drop(state);
        paginate(items, marker, max_items)
    }

    pub(super) fn check_alias_target(
        &self,
        account_id: &str,
        entry: &Entry,
        version: &str,
        weights: &BTreeMap<String, f64>,
    ) -> Result<()> {
        if version != "$LATEST" {
            let n = parse_version_number(version).ok_or_else(|| {
                ControlError::validation(format!(
                    "1 validation error detected: Value '{version}' at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)"
                ))
            })?;
            if !entry.versions.contains_key(&n) {
                return Err(self.not_found(account_id, &entry.latest.name, Some(version)));
            }
        }
        if weights.len() > 1 {
            return Err(ControlError::invalid(
                "Number of items in AdditionalVersionWeights cannot be greater than 1",
            ));
        }
        for (v, w) in weights {
            if !(0.0..=1.0).contains(w) || w.is_nan() {
                return Err(ControlError::validation(format!(
                    "1 validation error detected: Value '{w}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0]"
                )));
            }
            if v == version {
                return Err(ControlError::invalid(format!(
                    "Invalid function version {v}. Function version {v} is already included in routing configuration."
                )));
            }
            if version == "$LATEST" {
                return Err(ControlError::invalid(
                    "$LATEST is not supported for an alias pointing to more than 1 version",
                ));
            }
            let n = parse_version_number(v).ok_or_else(|| {
                ControlError::validation(format!(
                    "1 validation error detected: Value '{v}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [0-9]+]"
                ))
            })?;
            if !entry.versions.contains_key(&n) {
                return Err(self.not_found(account_id, &entry.latest.name, Some(v)));
            }
        }
        Ok(())
    }

    pub(super) fn put_alias_op(key: &FunctionKey, alias: &Alias) -> Result<Op> {
        Ok(Op::PutAlias {
            account_id: key.account_id.clone(),
            name: key.name.clone(),
            alias: alias.name.clone(),
            doc: serde_json::to_string(alias).map_err(ControlError::service)?,
        })
    }

    /// `CreateAlias`.
    pub fn create_alias(
        &self,
        account_id: &str,
        function_name: &str,
        name: &str,
        function_version: &str,
        description: Option<String>,
        weights: BTreeMap<String, f64>,
    ) -> Result<Alias> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        validate::alias_name(name)?;
        let description = description.unwrap_or_default();
        validate::description(&description)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        if entry.aliases.contains_key(name) {
            return Err(ControlError::conflict(format!(
                "Alias already exists: {}:{name}",
                self.arn(account_id, &r.name)
            )));
        }
        self.check_alias_target(account_id, entry, function_version, &weights)?;
        let alias = Alias {
            name: name.to_string(),
            function_version: function_version.to_string(),
            description,
            additional_version_weights: weights,
            revision_id: new_revision(),
        };
        self.persist(&[Self::put_alias_op(&key, &alias)?])?;
        let mut entry = entry.clone();
        entry.aliases.insert(name.to_string(), alias.clone());
        state.insert(key, entry);
        Ok(alias)
    }

    pub(super) fn alias_not_found(
        &self,
        account_id: &str,
        function: &str,
        alias: &str,
    ) -> ControlError {
        ControlError::not_found(format!(
            "Alias not found: {}:{alias}",
            self.arn(account_id, function)
        ))
    }

    /// `GetAlias`.
    pub fn get_alias(&self, account_id: &str, function_name: &str, name: &str) -> Result<Alias> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        entry
            .aliases
            .get(name)
            .cloned()
            .ok_or_else(|| self.alias_not_found(account_id, &r.name, name))
    }

    /// `ListAliases`, optionally only those pointing at `function_version`.
    pub fn list_aliases(
        &self,
        account_id: &str,
        function_name: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Alias>> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let items: Vec<(String, Alias)> = entry
            .aliases
            .values()
            .filter(|a| function_version.is_none_or(|v| a.function_version == v))
            .map(|a| (a.name.clone(), a.clone()))
            .collect();
        drop(state);
        paginate(items, marker, max_items)
    }

    /// `UpdateAlias`.
    #[allow(clippy::too_many_arguments)]
    pub fn update_alias(
        &self,
        account_id: &str,
        function_name: &str,
        name: &str,
        function_version: Option<String>,
        description: Option<String>,
        weights: Option<BTreeMap<String, f64>>,
        revision_id: Option<&str>,
    ) -> Result<Alias> {
        let r = self.parse(account_id, function_name)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let current = entry
            .aliases
            .get(name)
            .ok_or_else(|| self.alias_not_found(account_id, &r.name, name))?;
        Self::check_revision(&current.revision_id, revision_id)?;
        let mut alias = current.clone();
        if let Some(v) = function_version {
            alias.function_version = v;
        }
        if let Some(d) = description {
            validate::description(&d)?;
            alias.description = d;
        }
        if let Some(w) = weights {
            alias.additional_version_weights = w;
        }
        self.check_alias_target(
            account_id,
            entry,
            &alias.function_version,
            &alias.additional_version_weights,
        )?;
        let moved = entry.provisioned.contains_key(name)
            && alias.function_version != current.function_version;
        if moved {
            if alias.function_version == "$LATEST" {
                return Err(ControlError::invalid(provisioned::UNPUBLISHED));
            }
            provisioned::check_overlap(
                name,
                &alias.function_version,
                &entry.provisioned,
                &entry.aliases,
            )?;
        }
        alias.revision_id = new_revision();
        self.persist(&[Self::put_alias_op(&key, &alias)?])?;
        let mut entry = entry.clone();
        entry.aliases.insert(name.to_string(), alias.clone());
        state.insert(key, entry);
        drop(state);
        if moved {
            self.notify(Change::Provisioned {
                function_arn: self.arn(account_id, &r.name),
            });
        }
        Ok(alias)
    }

    /// `DeleteAlias`.
    pub fn delete_alias(&self, account_id: &str, function_name: &str, name: &str) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        if !entry.aliases.contains_key(name) {
            // Lambda answers DeleteAlias of a missing alias with success.
            return Ok(());
        }
        let mut entry = entry.clone();
        entry.aliases.remove(name);
        let mut ops = vec![Op::DeleteAlias {
            account_id: key.account_id.clone(),
            name: key.name.clone(),
            alias: name.to_string(),
        }];
        // The alias's URL, policy and provisioned concurrency go with it, as on Lambda.
        let had_url = entry.urls.remove(name).is_some();
        let had_policy = entry.policies.remove(name).is_some();
        let had_provisioned = entry.provisioned.remove(name).is_some();
        if had_url || had_policy || had_provisioned {
            ops.push(Self::put_function_op(&key, &entry)?);
        }
        self.persist(&ops)?;
        state.insert(key, entry);
        drop(state);
        if had_provisioned {
            self.notify(Change::Provisioned {
                function_arn: self.arn(account_id, &r.name),
            });
        }
        Ok(())
    }
}
