//! Functions: create, read, update (code and configuration), delete, list, tags and account usage.

use super::*;

/// Inputs of `CreateFunction`, already decoded from the wire.
#[derive(Debug, Default, Clone)]
pub struct CreateFunction {
    pub name: String,
    pub runtime: Option<String>,
    pub role: String,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<BTreeMap<String, String>>,
    pub ephemeral_storage: Option<i64>,
    pub logging: Option<LoggingInput>,
    pub tracing_mode: Option<String>,
    pub architectures: Option<Vec<String>>,
    pub tags: BTreeMap<String, String>,
    pub publish: bool,
    pub zip: Vec<u8>,
    /// `DeadLetterConfig.TargetArn`; empty means none.
    pub dead_letter_target: Option<String>,
    /// `Layers`: layer version ARNs, in order.
    pub layers: Option<Vec<String>>,
}

/// `LoggingConfig` as given by the caller.
#[derive(Debug, Default, Clone)]
pub struct LoggingInput {
    pub log_format: Option<String>,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub log_group: Option<String>,
}

/// Inputs of `UpdateFunctionConfiguration`; `None` keeps the current value.
#[derive(Debug, Default, Clone)]
pub struct ConfigUpdate {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<BTreeMap<String, String>>,
    pub ephemeral_storage: Option<i64>,
    pub logging: Option<LoggingInput>,
    pub tracing_mode: Option<String>,
    pub revision_id: Option<String>,
    /// `DeadLetterConfig.TargetArn`; `Some("")` removes it.
    pub dead_letter_target: Option<String>,
    /// `Layers`: replaces the function's layers (`Some(vec![])` removes them).
    pub layers: Option<Vec<String>>,
}

/// Inputs of `UpdateFunctionCode`.
#[derive(Debug, Default, Clone)]
pub struct CodeUpdate {
    pub zip: Vec<u8>,
    pub publish: bool,
    pub dry_run: bool,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// `GetFunction`'s answer.
#[derive(Debug, Clone)]
pub struct FunctionDetails {
    pub config: Arc<FunctionConfig>,
    pub tags: BTreeMap<String, String>,
    pub reserved_concurrency: Option<u32>,
}

/// Account-wide numbers for `GetAccountSettings`.
#[derive(Debug, Clone)]
pub struct AccountUsage {
    pub function_count: u64,
    pub total_code_size: u64,
    pub concurrency_limit: u32,
    pub unreserved_concurrency: u32,
}

impl ControlPlane {
    /// Stores a package; hold the guard until the record that refers to it is in memory, so
    /// code garbage collection cannot take it in between.
    pub(super) fn store_code(
        &self,
        zip: &[u8],
    ) -> Result<(CodeArtifact, crate::code_gc::UploadGuard)> {
        if zip.is_empty() {
            return Err(ControlError::invalid(
                "Could not unzip uploaded file. Please check your file, then try to upload again.",
            ));
        }
        let upload = self.code.gc().upload();
        Ok((self.code.put_zip(zip).map_err(code_error)?, upload))
    }

    /// Content addresses of the packages some function's `$LATEST` or version refers to.
    pub fn referenced_code(&self) -> Result<std::collections::HashSet<String>> {
        let state = self.read();
        let configs = state
            .functions
            .values()
            .flat_map(|e| std::iter::once(&e.latest).chain(e.versions.values()));
        let mut out: std::collections::HashSet<String> =
            configs.map(|c| c.code.sha256_hex.clone()).collect();
        Self::layer_references(&state, &mut out);
        Ok(out)
    }

    pub(super) fn logging(
        input: Option<&LoggingInput>,
        current: Option<&Logging>,
        name: &str,
    ) -> Result<Logging> {
        let mut l = current.cloned().unwrap_or_else(|| Logging {
            log_format: "Text".into(),
            application_log_level: None,
            system_log_level: None,
            log_group: format!("/aws/lambda/{name}"),
        });
        if let Some(i) = input {
            if let Some(f) = &i.log_format {
                validate::log_format(f)?;
                l.log_format = f.clone();
                // Back to text: the levels of the JSON format go with it.
                if f == "Text" {
                    l.application_log_level = None;
                    l.system_log_level = None;
                }
            }
            if let Some(a) = &i.application_log_level {
                validate::log_level(
                    "loggingConfig.applicationLogLevel",
                    a,
                    &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"],
                )?;
                l.application_log_level = Some(a.clone());
            }
            if let Some(s) = &i.system_log_level {
                validate::log_level(
                    "loggingConfig.systemLogLevel",
                    s,
                    &["DEBUG", "INFO", "WARN"],
                )?;
                l.system_log_level = Some(s.clone());
            }
            if let Some(g) = &i.log_group {
                validate::log_group(g)?;
                l.log_group = g.clone();
            }
        }
        if l.log_format == "Text"
            && (l.application_log_level.is_some() || l.system_log_level.is_some())
        {
            return Err(ControlError::invalid(
                "Log levels can only be set when LogFormat is JSON.",
            ));
        }
        // The JSON format always has levels; Lambda fills in INFO for those not given.
        if l.log_format == "JSON" {
            l.application_log_level
                .get_or_insert_with(|| "INFO".to_string());
            l.system_log_level.get_or_insert_with(|| "INFO".to_string());
        }
        Ok(l)
    }

    /// `CreateFunction`. Returns `$LATEST` and, with `Publish`, version 1.
    pub fn create_function(
        &self,
        account_id: &str,
        input: CreateFunction,
    ) -> Result<(Arc<FunctionConfig>, Option<Arc<FunctionConfig>>)> {
        if !crate::arn::valid_function_name(&input.name) {
            // CreateFunction also accepts ARN forms of the name.
            let r = self.parse(account_id, &input.name)?;
            if r.qualifier.is_some() {
                return Err(ControlError::invalid(
                    "Unqualified function name expected; the function name cannot include a version or alias.",
                ));
            }
            return self.create_function(
                account_id,
                CreateFunction {
                    name: r.name,
                    ..input
                },
            );
        }
        let runtime = input.runtime.clone();
        match &runtime {
            Some(r) => validate::runtime(r)?,
            None => {
                return Err(ControlError::invalid(
                    "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
                ));
            }
        }
        let handler = input.handler.clone().ok_or_else(|| {
            ControlError::invalid(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            )
        })?;
        validate::handler(&handler)?;
        validate::role(&input.role)?;
        let description = input.description.clone().unwrap_or_default();
        validate::description(&description)?;
        let timeout = validate::timeout(input.timeout.unwrap_or(3))?;
        let memory = validate::memory_size(input.memory_size.unwrap_or(128))?;
        let ephemeral = validate::ephemeral_storage(input.ephemeral_storage.unwrap_or(512))?;
        if let Some(env) = &input.environment {
            validate::environment(env)?;
        }
        let architectures = input
            .architectures
            .clone()
            .unwrap_or_else(|| vec!["x86_64".into()]);
        validate::architectures(&architectures)?;
        let tracing_mode = input
            .tracing_mode
            .clone()
            .unwrap_or_else(|| "PassThrough".into());
        if tracing_mode != "PassThrough" && tracing_mode != "Active" {
            return Err(ControlError::validation(format!(
                "1 validation error detected: Value '{tracing_mode}' at 'tracingConfig.mode' failed to satisfy constraint: Member must satisfy enum value set: [Active, PassThrough]"
            )));
        }
        validate::tags(&input.tags)?;
        let dead_letter_target = validate::dead_letter_target(input.dead_letter_target.as_deref())?;
        let logging = Self::logging(input.logging.as_ref(), None, &input.name)?;
        let key = FunctionKey {
            account_id: account_id.to_string(),
            name: input.name.clone(),
        };
        if self.read().contains_key(&key) {
            return Err(self.exists_error(account_id, &input.name));
        }
        let layers = match &input.layers {
            Some(arns) => {
                self.function_layers(account_id, arns, runtime.as_deref(), &architectures)?
            }
            None => Vec::new(),
        };
        let (artifact, _upload) = self.store_code(&input.zip)?;
        let code = CodeRef {
            sha256_hex: artifact.sha256_hex,
            code_sha256: artifact.code_sha256,
            code_size: artifact.code_size,
        };
        self.check_total_size(&code, &layers)?;
        let _opt = self.prepare_opt(&layers)?;
        let latest = FunctionConfig {
            name: input.name.clone(),
            version: "$LATEST".into(),
            runtime,
            role: input.role,
            handler: Some(handler),
            description,
            timeout,
            memory_size: memory,
            environment: input.environment,
            ephemeral_storage: ephemeral,
            logging,
            tracing_mode,
            architectures,
            code,
            last_modified: now_lambda(),
            revision_id: new_revision(),
            dead_letter_target,
            layers,
        };
        let mut entry = Entry {
            latest: Arc::new(latest),
            tags: input.tags,
            reserved_concurrency: None,
            last_version: 0,
            versions: BTreeMap::new(),
            aliases: BTreeMap::new(),
            urls: BTreeMap::new(),
            policies: BTreeMap::new(),
            provisioned: BTreeMap::new(),
        };
        let mut published = None;
        let mut ops = Vec::new();
        if input.publish {
            let v = Self::new_version(&mut entry, None);
            ops.push(Self::put_version_op(&key, 1, &v)?);
            published = Some(v);
        }
        ops.insert(0, Self::put_function_op(&key, &entry)?);
        let mut state = self.write()?;
        if state.contains_key(&key) {
            return Err(self.exists_error(account_id, &input.name));
        }
        self.persist(&ops)?;
        let latest = entry.latest.clone();
        state.insert(key, entry);
        Ok((latest, published))
    }

    pub(super) fn exists_error(&self, account_id: &str, name: &str) -> ControlError {
        ControlError::conflict(format!("Function already exist: {name}"))
            .with_arn_hint(&self.arn(account_id, name))
    }

    /// `GetFunction`.
    pub fn get_function(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionDetails> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let config = self.config_for(account_id, entry, q.as_deref())?;
        Ok(FunctionDetails {
            config,
            tags: entry.tags.clone(),
            reserved_concurrency: entry.reserved_concurrency,
        })
    }

    /// `GetFunctionConfiguration`.
    pub fn get_configuration(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<Arc<FunctionConfig>> {
        Ok(self
            .get_function(account_id, function_name, qualifier)?
            .config)
    }

    /// `ListFunctions`.
    pub fn list_functions(
        &self,
        account_id: &str,
        all_versions: bool,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Arc<FunctionConfig>>> {
        let state = self.read();
        let mut items: Vec<(String, Arc<FunctionConfig>)> = Vec::new();
        for (k, e) in state.iter().filter(|(k, _)| k.account_id == account_id) {
            items.push((version_sort_key(&k.name, "$LATEST"), e.latest.clone()));
            if all_versions {
                for (n, v) in &e.versions {
                    items.push((version_sort_key(&k.name, &n.to_string()), v.clone()));
                }
            }
        }
        drop(state);
        items.sort_by(|a, b| a.0.cmp(&b.0));
        paginate(items, marker, max_items)
    }

    /// Applies a change to `$LATEST` (and optionally publishes), persisting atomically.
    pub(super) fn update_latest(
        &self,
        account_id: &str,
        name: &str,
        revision_id: Option<&str>,
        publish: bool,
        change: impl FnOnce(&mut FunctionConfig) -> Result<()>,
    ) -> Result<Arc<FunctionConfig>> {
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, name)?;
        let key = key.clone();
        Self::check_revision(&entry.latest.revision_id, revision_id)?;
        let mut entry = entry.clone();
        let mut latest = (*entry.latest).clone();
        change(&mut latest)?;
        latest.last_modified = now_lambda();
        latest.revision_id = new_revision();
        entry.latest = Arc::new(latest);
        let mut ops = Vec::new();
        let result = if publish {
            let v = self.publish_if_changed(&mut entry, None);
            if let Some((n, cfg)) = &v.1 {
                ops.push(Self::put_version_op(&key, *n, cfg)?);
            }
            v.0
        } else {
            entry.latest.clone()
        };
        ops.insert(0, Self::put_function_op(&key, &entry)?);
        self.persist(&ops)?;
        let change = Change::Updated {
            function_arn: self.arn(account_id, name),
            latest_revision: entry.latest.revision_id.clone(),
        };
        state.insert(key, entry);
        drop(state);
        self.notify(change);
        Ok(result)
    }

    /// `UpdateFunctionCode`.
    pub fn update_code(
        &self,
        account_id: &str,
        function_name: &str,
        input: CodeUpdate,
    ) -> Result<Arc<FunctionConfig>> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        if let Some(a) = &input.architectures {
            validate::architectures(a)?;
        }
        {
            let state = self.read();
            let (_, e) = self.lookup(&state, account_id, &r.name)?;
            Self::check_revision(&e.latest.revision_id, input.revision_id.as_deref())?;
        }
        let (artifact, _upload) = self.store_code(&input.zip)?;
        {
            let state = self.read();
            let (_, e) = self.lookup(&state, account_id, &r.name)?;
            let code = CodeRef {
                sha256_hex: artifact.sha256_hex.clone(),
                code_sha256: artifact.code_sha256.clone(),
                code_size: artifact.code_size,
            };
            self.check_total_size(&code, &e.latest.layers)?;
        }
        if input.dry_run {
            let state = self.read();
            let (_, e) = self.lookup(&state, account_id, &r.name)?;
            let mut cfg = (*e.latest).clone();
            cfg.code = CodeRef {
                sha256_hex: artifact.sha256_hex,
                code_sha256: artifact.code_sha256,
                code_size: artifact.code_size,
            };
            return Ok(Arc::new(cfg));
        }
        self.update_latest(
            account_id,
            &r.name,
            input.revision_id.as_deref(),
            input.publish,
            |cfg| {
                cfg.code = CodeRef {
                    sha256_hex: artifact.sha256_hex,
                    code_sha256: artifact.code_sha256,
                    code_size: artifact.code_size,
                };
                if let Some(a) = input.architectures {
                    cfg.architectures = a;
                }
                Ok(())
            },
        )
    }

    /// `UpdateFunctionConfiguration`.
    pub fn update_configuration(
        &self,
        account_id: &str,
        function_name: &str,
        input: ConfigUpdate,
    ) -> Result<Arc<FunctionConfig>> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        let revision = input.revision_id.clone();
        // Layers are resolved, checked and merged before the writer's turn: the merge is disk
        // work, and its result depends only on the list.
        let mut _opt = None;
        let layers = match &input.layers {
            Some(arns) => {
                let (runtime, archs, code) = {
                    let state = self.read();
                    let (_, e) = self.lookup(&state, account_id, &r.name)?;
                    let runtime = input.runtime.clone().or_else(|| e.latest.runtime.clone());
                    (
                        runtime,
                        e.latest.architectures.clone(),
                        e.latest.code.clone(),
                    )
                };
                let layers = self.function_layers(account_id, arns, runtime.as_deref(), &archs)?;
                self.check_total_size(&code, &layers)?;
                _opt = self.prepare_opt(&layers)?;
                Some(layers)
            }
            None => None,
        };
        self.update_latest(account_id, &r.name, revision.as_deref(), false, |cfg| {
            if let Some(l) = layers {
                cfg.layers = l;
            }
            if let Some(rt) = input.runtime {
                validate::runtime(&rt)?;
                cfg.runtime = Some(rt);
            }
            if let Some(role) = input.role {
                validate::role(&role)?;
                cfg.role = role;
            }
            if let Some(h) = input.handler {
                validate::handler(&h)?;
                cfg.handler = Some(h);
            }
            if let Some(d) = input.description {
                validate::description(&d)?;
                cfg.description = d;
            }
            if let Some(t) = input.timeout {
                cfg.timeout = validate::timeout(t)?;
            }
            if let Some(m) = input.memory_size {
                cfg.memory_size = validate::memory_size(m)?;
            }
            if let Some(env) = input.environment {
                validate::environment(&env)?;
                cfg.environment = Some(env);
            }
            if let Some(s) = input.ephemeral_storage {
                cfg.ephemeral_storage = validate::ephemeral_storage(s)?;
            }
            if let Some(l) = input.logging {
                cfg.logging = Self::logging(Some(&l), Some(&cfg.logging), &cfg.name)?;
            }
            if let Some(t) = input.tracing_mode {
                if t != "PassThrough" && t != "Active" {
                    return Err(ControlError::validation(format!(
                        "1 validation error detected: Value '{t}' at 'tracingConfig.mode' failed to satisfy constraint: Member must satisfy enum value set: [Active, PassThrough]"
                    )));
                }
                cfg.tracing_mode = t;
            }
            if let Some(d) = input.dead_letter_target {
                cfg.dead_letter_target = validate::dead_letter_target(Some(&d))?;
            }
            Ok(())
        })
    }

    /// `DeleteFunction` (whole function, or one version with `Qualifier`).
    pub fn delete_function(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let arn = self.arn(account_id, &r.name);
        match q.as_deref() {
            None => {
                self.persist(&[Op::DeleteFunction {
                    account_id: key.account_id.clone(),
                    name: key.name.clone(),
                }])?;
                state.remove(&key);
            }
            Some("$LATEST") => {
                return Err(ControlError::invalid(
                    "$LATEST version cannot be deleted without deleting the function.",
                ));
            }
            Some(q) => {
                let n = parse_version_number(q).ok_or_else(|| {
                    ControlError::invalid(format!(
                        "Deletion of aliases is not supported by DeleteFunction; use DeleteAlias (got qualifier {q})."
                    ))
                })?;
                if !entry.versions.contains_key(&n) {
                    return Err(self.not_found(account_id, &r.name, Some(q)));
                }
                let users: Vec<&str> = entry
                    .aliases
                    .values()
                    .filter(|a| {
                        a.function_version == q || a.additional_version_weights.contains_key(q)
                    })
                    .map(|a| a.name.as_str())
                    .collect();
                if !users.is_empty() {
                    return Err(ControlError::conflict(format!(
                        "Unable to delete version because the following aliases reference it: [{}]",
                        users.join(", ")
                    )));
                }
                let mut entry = entry.clone();
                entry.versions.remove(&n);
                let mut ops = vec![Op::DeleteVersion {
                    account_id: key.account_id.clone(),
                    name: key.name.clone(),
                    version: n,
                }];
                // A version's policy and provisioned concurrency go with it.
                let had_policy = entry.policies.remove(q).is_some();
                let had_provisioned = entry.provisioned.remove(q).is_some();
                if had_policy || had_provisioned {
                    ops.push(Self::put_function_op(&key, &entry)?);
                }
                self.persist(&ops)?;
                state.insert(key, entry);
            }
        }
        drop(state);
        self.notify(Change::Deleted { function_arn: arn });
        Ok(())
    }

    /// `GetAccountSettings`.
    pub fn account_usage(&self, account_id: &str) -> Result<AccountUsage> {
        let state = self.read();
        let mut count = 0;
        let mut seen = std::collections::HashSet::new();
        let mut total: u64 = 0;
        for (_, e) in state.iter().filter(|(k, _)| k.account_id == account_id) {
            count += 1;
            for cfg in std::iter::once(&e.latest).chain(e.versions.values()) {
                if seen.insert(cfg.code.sha256_hex.clone()) {
                    total = total.saturating_add(cfg.code.code_size);
                }
            }
        }
        let reserved = Self::reserved_total(&state, account_id, "");
        let limit = self.config.account_concurrency;
        Ok(AccountUsage {
            function_count: count,
            total_code_size: total,
            concurrency_limit: limit,
            // At most `limit`, so the conversion back cannot fail.
            unreserved_concurrency: u32::try_from(u64::from(limit).saturating_sub(reserved))
                .unwrap_or(0),
        })
    }

    /// Finds the function a taggable resource ARN names.
    pub(super) fn tag_target(&self, account_id: &str, resource: &str) -> Result<String> {
        let r = self.parse(account_id, resource)?;
        if r.region.is_none() {
            return Err(ControlError::invalid(format!(
                "Invalid resource ARN: {resource}"
            )));
        }
        if r.qualifier.is_some() {
            return Err(ControlError::invalid(
                "Tags are not supported on function versions or aliases; use the unqualified function ARN.",
            ));
        }
        Ok(r.name)
    }

    /// `TagResource`.
    pub fn tag_resource(
        &self,
        account_id: &str,
        resource: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<()> {
        let name = self.tag_target(account_id, resource)?;
        self.change_doc(account_id, &name, |e| {
            e.tags.extend(tags);
            validate::tags(&e.tags)
        })?;
        Ok(())
    }

    /// `UntagResource`.
    pub fn untag_resource(&self, account_id: &str, resource: &str, keys: &[String]) -> Result<()> {
        let name = self.tag_target(account_id, resource)?;
        self.change_doc(account_id, &name, |e| {
            for k in keys {
                e.tags.remove(k);
            }
            Ok(())
        })?;
        Ok(())
    }

    /// `ListTags`.
    pub fn list_tags(&self, account_id: &str, resource: &str) -> Result<BTreeMap<String, String>> {
        let name = self.tag_target(account_id, resource)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &name)?;
        Ok(entry.tags.clone())
    }

    /// Path of a stored zip, if its content address is known.
    pub fn code_zip(&self, sha256_hex: &str) -> Option<PathBuf> {
        self.code.get(sha256_hex).map(|a| a.zip_path)
    }
}
