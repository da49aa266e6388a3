//! Layers: `PublishLayerVersion`, `GetLayerVersion` (by name or ARN), `ListLayers`,
//! `ListLayerVersions`, `DeleteLayerVersion`, the layer version policy operations, and the
//! `Layers` of a function's configuration.
//!
//! Layer packages go through the same content-addressed code store as functions' packages. A
//! function keeps, for each layer version it uses, the package's address ([`LayerRef`]), so a
//! deleted layer version keeps working for the functions (and published versions) that use it;
//! code garbage collection counts those as references. The `/opt` tree a list of layers makes
//! is merged once when the configuration is written (see `code::opt`), so the invoke path only
//! computes its path.

use super::*;
use crate::layer::{
    self, GET_LAYER_VERSION, LayerDoc, LayerPolicy, LayerRef, LayerStatement, LayerVersion,
    MAX_LAYERS,
};

/// A layer as kept in memory: its document and its live versions.
#[derive(Debug, Clone, Default)]
pub(super) struct LayerEntry {
    doc: LayerDoc,
    versions: BTreeMap<u64, Arc<LayerVersion>>,
}

/// Every layer, by (account, name); ordered, so listings need no sort.
pub(super) type LayerIndex = BTreeMap<(String, String), Arc<LayerEntry>>;

/// Inputs of `PublishLayerVersion`, already decoded from the wire.
#[derive(Debug, Default, Clone)]
pub struct PublishLayer {
    /// A name or a layer ARN.
    pub layer_name: String,
    pub description: Option<String>,
    pub compatible_runtimes: Option<Vec<String>>,
    pub compatible_architectures: Option<Vec<String>>,
    pub license_info: Option<String>,
    pub zip: Vec<u8>,
}

/// Inputs of `AddLayerVersionPermission`.
#[derive(Debug, Default, Clone)]
pub struct LayerPermissionInput {
    pub statement_id: String,
    pub action: String,
    pub principal: String,
    pub organization_id: Option<String>,
    pub revision_id: Option<String>,
}

/// Largest `MaxItems` of the layer listings.
const MAX_LAYER_LIST_ITEMS: i64 = 50;

/// Lambda's limit on a layer version policy document, in bytes.
const MAX_LAYER_POLICY_BYTES: usize = 20_480;

/// Loads the layers of a store snapshot.
pub(super) fn load(
    layers: Vec<updraft_store::LayerRow>,
    versions: Vec<updraft_store::LayerVersionRow>,
) -> Result<LayerIndex> {
    let mut index: BTreeMap<(String, String), LayerEntry> = BTreeMap::new();
    for row in layers {
        let doc: LayerDoc = serde_json::from_str(&row.doc).map_err(ControlError::service)?;
        index.entry((row.account_id, row.name)).or_default().doc = doc;
    }
    for row in versions {
        let v: LayerVersion = serde_json::from_str(&row.doc).map_err(ControlError::service)?;
        index
            .entry((row.account_id, row.name))
            .or_default()
            .versions
            .insert(row.version, Arc::new(v));
    }
    Ok(index.into_iter().map(|(k, e)| (k, Arc::new(e))).collect())
}

fn layer_version_not_found() -> ControlError {
    ControlError::not_found(NO_SUCH_RESOURCE)
}

fn check_runtimes(runtimes: &[String]) -> Result<()> {
    if runtimes.len() > 15 {
        return Err(ControlError::validation(
            "1 validation error detected: Value at 'compatibleRuntimes' failed to satisfy constraint: Member must have length less than or equal to 15",
        ));
    }
    runtimes.iter().try_for_each(|r| validate::runtime(r))
}

fn check_architectures(archs: &[String]) -> Result<()> {
    let known = archs.iter().all(|a| a == "x86_64" || a == "arm64");
    let unique = archs.len() < 2 || archs[0] != archs[1];
    if archs.len() <= 2 && known && unique {
        Ok(())
    } else {
        Err(ControlError::validation(
            "1 validation error detected: Value at 'compatibleArchitectures' failed to satisfy constraint: Member must have length less than or equal to 2, and each member must satisfy enum value set: [x86_64, arm64]",
        ))
    }
}

/// About what one statement adds to the policy document besides its own strings (Lambda's
/// rendering lives in the front door; this bound only has to keep documents near the limit).
const STATEMENT_OVERHEAD_BYTES: usize = 160;

fn policy_size(v: &LayerVersion) -> usize {
    let arn = v.layer_arn.len() + 21;
    v.policy
        .statements
        .iter()
        .map(|s| {
            STATEMENT_OVERHEAD_BYTES
                + arn
                + s.sid.len()
                + s.principal.len()
                + s.organization_id.as_ref().map_or(0, |o| o.len() + 40)
        })
        .sum::<usize>()
        + 50
}

impl ControlPlane {
    /// The owner account and name a `LayerName` designates, refusing other regions.
    fn layer_target(&self, caller: &str, layer_name: &str) -> Result<(String, String)> {
        let r = layer::parse_layer_name(layer_name)?;
        if let Some(region) = &r.region
            && region != &self.config.region
        {
            return Err(ControlError::invalid(format!(
                "Region {region} in the layer ARN does not match this endpoint's region {}",
                self.config.region
            )));
        }
        Ok((r.account_id.unwrap_or_else(|| caller.to_string()), r.name))
    }

    /// Only the owner writes a layer.
    fn own_layer(&self, caller: &str, layer_name: &str, action: &str) -> Result<String> {
        let (owner, name) = self.layer_target(caller, layer_name)?;
        if owner != caller {
            return Err(ControlError::new(
                ErrorKind::AccessDenied,
                format!(
                    "User: arn:aws:iam::{caller}:root is not authorized to perform: lambda:{action} on resource: {}",
                    layer::layer_arn(&self.config.region, &owner, &name)
                ),
            ));
        }
        Ok(name)
    }

    fn layer_denied(caller: &str, arn: &str) -> ControlError {
        ControlError::new(
            ErrorKind::AccessDenied,
            format!(
                "User: arn:aws:iam::{caller}:root is not authorized to perform: lambda:GetLayerVersion on resource: {arn} because no resource-based policy allows the lambda:GetLayerVersion action"
            ),
        )
    }

    fn find_layer_version(
        state: &State,
        owner: &str,
        name: &str,
        version: u64,
    ) -> Option<Arc<LayerVersion>> {
        state
            .layers
            .get(&(owner.to_string(), name.to_string()))?
            .versions
            .get(&version)
            .cloned()
    }

    /// Persists one layer's change and publishes it.
    fn put_layer(
        &self,
        turn: &mut WriteTurn<'_>,
        key: (String, String),
        entry: LayerEntry,
        ops: &[Op],
    ) -> Result<()> {
        self.persist(ops)?;
        Arc::make_mut(&mut turn.state)
            .layers
            .insert(key, Arc::new(entry));
        self.swap(turn.state.clone());
        Ok(())
    }

    fn put_layer_version_op(v: &LayerVersion) -> Result<Op> {
        Ok(Op::PutLayerVersion {
            account_id: v.account_id.clone(),
            name: v.name.clone(),
            version: v.version,
            doc: serde_json::to_string(v).map_err(ControlError::service)?,
        })
    }

    /// `PublishLayerVersion`.
    pub fn publish_layer_version(
        &self,
        account_id: &str,
        input: PublishLayer,
    ) -> Result<Arc<LayerVersion>> {
        let name = self.own_layer(account_id, &input.layer_name, "PublishLayerVersion")?;
        let description = input.description.unwrap_or_default();
        validate::description(&description)?;
        let runtimes = input.compatible_runtimes.unwrap_or_default();
        check_runtimes(&runtimes)?;
        let archs = input.compatible_architectures.unwrap_or_default();
        check_architectures(&archs)?;
        if let Some(l) = &input.license_info
            && l.chars().count() > 512
        {
            return Err(ControlError::validation(
                "1 validation error detected: Value at 'licenseInfo' failed to satisfy constraint: Member must have length less than or equal to 512",
            ));
        }
        let (artifact, _upload) = self.store_code(&input.zip)?;
        let unzipped_size = self
            .code
            .unzipped_size(&artifact.sha256_hex)
            .map_err(code_error)?;
        let mut turn = self.write()?;
        let key = (account_id.to_string(), name.clone());
        let mut entry = turn
            .layers
            .get(&key)
            .map(|e| (**e).clone())
            .unwrap_or_default();
        entry.doc.last_version += 1;
        let version = Arc::new(LayerVersion {
            account_id: account_id.to_string(),
            name: name.clone(),
            version: entry.doc.last_version,
            layer_arn: layer::layer_arn(&self.config.region, account_id, &name),
            description,
            created_date: now_lambda(),
            compatible_runtimes: runtimes,
            compatible_architectures: archs,
            license_info: input.license_info,
            code: CodeRef {
                sha256_hex: artifact.sha256_hex,
                code_sha256: artifact.code_sha256,
                code_size: artifact.code_size,
            },
            unzipped_size,
            policy: LayerPolicy::default(),
        });
        entry.versions.insert(version.version, version.clone());
        let ops = [
            Op::PutLayer {
                account_id: account_id.to_string(),
                name,
                doc: serde_json::to_string(&entry.doc).map_err(ControlError::service)?,
            },
            Self::put_layer_version_op(&version)?,
        ];
        self.put_layer(&mut turn, key, entry, &ops)?;
        Ok(version)
    }

    /// `GetLayerVersion`: the caller's own, or another account's that its policy lets the
    /// caller use.
    pub fn get_layer_version(
        &self,
        caller: &str,
        layer_name: &str,
        version: i64,
    ) -> Result<Arc<LayerVersion>> {
        let (owner, name) = self.layer_target(caller, layer_name)?;
        let version = u64::try_from(version).map_err(|_| layer_version_not_found())?;
        let v = Self::find_layer_version(&self.read(), &owner, &name, version)
            .ok_or_else(layer_version_not_found)?;
        if !v.usable_by(caller) {
            return Err(Self::layer_denied(caller, &v.version_arn()));
        }
        Ok(v)
    }

    /// `GetLayerVersionByArn`.
    pub fn get_layer_version_by_arn(&self, caller: &str, arn: &str) -> Result<Arc<LayerVersion>> {
        let r = layer::parse_layer_version_arn(arn, "arn")?;
        let layer = layer::layer_arn(&r.region, &r.account_id, &r.name);
        self.get_layer_version(caller, &layer, i64::try_from(r.version).unwrap_or(-1))
    }

    /// `ListLayers`: each of the caller's layers with its newest version that matches the filters.
    pub fn list_layers(
        &self,
        account_id: &str,
        runtime: Option<&str>,
        architecture: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Arc<LayerVersion>>> {
        max_items_at_most(max_items, MAX_LAYER_LIST_ITEMS)?;
        if let Some(r) = runtime {
            validate::runtime(r)?;
        }
        if let Some(a) = architecture {
            check_architectures(&[a.to_string()])?;
        }
        let state = self.read();
        let items: Vec<(String, Arc<LayerVersion>)> = state
            .layers
            .range((account_id.to_string(), String::new())..)
            .take_while(|((a, _), _)| a == account_id)
            .filter_map(|((_, name), e)| {
                let v = e
                    .versions
                    .values()
                    .rev()
                    .find(|v| v.matches(runtime, architecture))?;
                Some((name.clone(), v.clone()))
            })
            .collect();
        paginate(items, marker, max_items)
    }

    /// `ListLayerVersions`: newest first.
    pub fn list_layer_versions(
        &self,
        caller: &str,
        layer_name: &str,
        runtime: Option<&str>,
        architecture: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Arc<LayerVersion>>> {
        max_items_at_most(max_items, MAX_LAYER_LIST_ITEMS)?;
        if let Some(r) = runtime {
            validate::runtime(r)?;
        }
        if let Some(a) = architecture {
            check_architectures(&[a.to_string()])?;
        }
        let (owner, name) = self.layer_target(caller, layer_name)?;
        let state = self.read();
        let items: Vec<(String, Arc<LayerVersion>)> = state
            .layers
            .get(&(owner, name))
            .map(|e| {
                e.versions
                    .values()
                    .rev()
                    .filter(|v| v.usable_by(caller) && v.matches(runtime, architecture))
                    // Newest first, so the sort key counts down.
                    .map(|v| (format!("{:020}", u64::MAX - v.version), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        paginate(items, marker, max_items)
    }

    /// `DeleteLayerVersion`. Deleting a version that does not exist succeeds, as on Lambda.
    /// Functions that use the version keep their copy of it.
    pub fn delete_layer_version(
        &self,
        account_id: &str,
        layer_name: &str,
        version: i64,
    ) -> Result<()> {
        let name = self.own_layer(account_id, layer_name, "DeleteLayerVersion")?;
        let Ok(version) = u64::try_from(version) else {
            return Ok(());
        };
        let mut turn = self.write()?;
        let key = (account_id.to_string(), name.clone());
        let Some(entry) = turn.layers.get(&key) else {
            return Ok(());
        };
        if !entry.versions.contains_key(&version) {
            return Ok(());
        }
        let mut entry = (**entry).clone();
        entry.versions.remove(&version);
        let ops = [Op::DeleteLayerVersion {
            account_id: account_id.to_string(),
            name,
            version,
        }];
        self.put_layer(&mut turn, key, entry, &ops)
    }

    /// Changes one layer version's policy under a writer's turn.
    fn change_layer_policy<T>(
        &self,
        account_id: &str,
        layer_name: &str,
        version: i64,
        action: &str,
        f: impl FnOnce(&mut LayerVersion) -> Result<T>,
    ) -> Result<T> {
        let name = self.own_layer(account_id, layer_name, action)?;
        let version = u64::try_from(version).map_err(|_| layer_version_not_found())?;
        let mut turn = self.write()?;
        let key = (account_id.to_string(), name);
        let entry = turn.layers.get(&key).ok_or_else(layer_version_not_found)?;
        let mut v = (**entry
            .versions
            .get(&version)
            .ok_or_else(layer_version_not_found)?)
        .clone();
        let mut entry = (**entry).clone();
        let out = f(&mut v)?;
        let op = Self::put_layer_version_op(&v)?;
        entry.versions.insert(version, Arc::new(v));
        self.put_layer(&mut turn, key, entry, &[op])?;
        Ok(out)
    }

    /// `AddLayerVersionPermission`: returns the layer version as changed and the added statement.
    pub fn add_layer_version_permission(
        &self,
        account_id: &str,
        layer_name: &str,
        version: i64,
        input: LayerPermissionInput,
    ) -> Result<(LayerVersion, LayerStatement)> {
        layer::check_statement_id(&input.statement_id)?;
        if input.action != GET_LAYER_VERSION {
            return Err(ControlError::validation(format!(
                "1 validation error detected: Value '{}' at 'action' failed to satisfy constraint: Member must satisfy regular expression pattern: {GET_LAYER_VERSION}",
                input.action
            )));
        }
        let principal = layer::parse_principal(&input.principal)?;
        if let Some(o) = &input.organization_id {
            layer::check_organization_id(o)?;
        }
        self.change_layer_policy(
            account_id,
            layer_name,
            version,
            "AddLayerVersionPermission",
            |v| {
                if let Some(want) = &input.revision_id
                    && *want != v.policy.revision_id
                {
                    return Err(ControlError::precondition(
                        "The Revision Id provided does not match the latest Revision Id. Call the GetLayerVersionPolicy API to retrieve the latest Revision Id",
                    ));
                }
                if v.policy
                    .statements
                    .iter()
                    .any(|s| s.sid == input.statement_id)
                {
                    return Err(ControlError::conflict(format!(
                        "The statement id ({}) provided already exists. Please provide a new statement id, or remove the existing statement.",
                        input.statement_id
                    )));
                }
                let statement = LayerStatement {
                    sid: input.statement_id.clone(),
                    principal,
                    organization_id: input.organization_id.clone(),
                };
                v.policy.statements.push(statement.clone());
                if policy_size(v) > MAX_LAYER_POLICY_BYTES {
                    return Err(ControlError::new(
                        ErrorKind::PolicyLengthExceeded,
                        "The final policy size is bigger than the limit.",
                    ));
                }
                v.policy.revision_id = new_revision();
                Ok((v.clone(), statement))
            },
        )
    }

    /// `RemoveLayerVersionPermission`.
    pub fn remove_layer_version_permission(
        &self,
        account_id: &str,
        layer_name: &str,
        version: i64,
        statement_id: &str,
        revision_id: Option<&str>,
    ) -> Result<()> {
        self.change_layer_policy(
            account_id,
            layer_name,
            version,
            "RemoveLayerVersionPermission",
            |v| {
                if let Some(want) = revision_id
                    && want != v.policy.revision_id
                {
                    return Err(ControlError::precondition(
                        "The Revision Id provided does not match the latest Revision Id. Call the GetLayerVersionPolicy API to retrieve the latest Revision Id",
                    ));
                }
                let before = v.policy.statements.len();
                v.policy.statements.retain(|s| s.sid != statement_id);
                if v.policy.statements.len() == before {
                    return Err(ControlError::not_found(format!(
                        "Statement {statement_id} is not found in resource policy."
                    )));
                }
                v.policy.revision_id = new_revision();
                Ok(())
            },
        )
    }

    /// `GetLayerVersionPolicy`: the layer version, whose policy has at least one statement.
    pub fn get_layer_version_policy(
        &self,
        account_id: &str,
        layer_name: &str,
        version: i64,
    ) -> Result<Arc<LayerVersion>> {
        let name = self.own_layer(account_id, layer_name, "GetLayerVersionPolicy")?;
        let version = u64::try_from(version).map_err(|_| layer_version_not_found())?;
        let v = Self::find_layer_version(&self.read(), account_id, &name, version)
            .ok_or_else(layer_version_not_found)?;
        if v.policy.statements.is_empty() {
            return Err(ControlError::not_found(
                "No policy is associated with the given resource.",
            ));
        }
        Ok(v)
    }

    /// Resolves a function's `Layers`: at most five, one version per layer, each existing and
    /// usable by the account, compatible with the function's runtime and architecture.
    pub(super) fn function_layers(
        &self,
        account_id: &str,
        arns: &[String],
        runtime: Option<&str>,
        architectures: &[String],
    ) -> Result<Vec<LayerRef>> {
        if arns.len() > MAX_LAYERS {
            return Err(ControlError::invalid(format!(
                "Cannot reference more than {MAX_LAYERS} layers."
            )));
        }
        let state = self.read();
        let mut out: Vec<LayerRef> = Vec::with_capacity(arns.len());
        let mut seen: Vec<(String, String)> = Vec::new();
        for arn in arns {
            let r = layer::parse_layer_version_arn(arn, "layers")?;
            let owner_name = (r.account_id.clone(), r.name.clone());
            if seen.contains(&owner_name) {
                return Err(ControlError::invalid(format!(
                    "Two different versions of the same layer are not allowed to be referenced in the same function. {arn} is referenced more than once."
                )));
            }
            seen.push(owner_name);
            if r.region != self.config.region {
                return Err(ControlError::invalid(format!(
                    "Layer version {arn} does not exist."
                )));
            }
            let v = Self::find_layer_version(&state, &r.account_id, &r.name, r.version)
                .ok_or_else(|| {
                    ControlError::invalid(format!("Layer version {arn} does not exist."))
                })?;
            if !v.usable_by(account_id) {
                return Err(Self::layer_denied(account_id, arn));
            }
            if let Some(rt) = runtime
                && !v.compatible_runtimes.is_empty()
                && !v.compatible_runtimes.iter().any(|c| c == rt)
            {
                return Err(ControlError::invalid(format!(
                    "Layer version {arn} is not compatible with the runtime {rt}. The layer's compatible runtimes are: [{}]",
                    v.compatible_runtimes.join(", ")
                )));
            }
            if let Some(arch) = architectures.first()
                && !v.compatible_architectures.is_empty()
                && !v.compatible_architectures.contains(arch)
            {
                return Err(ControlError::invalid(format!(
                    "Layer version {arn} is not compatible with the architecture {arch}. The layer's compatible architectures are: [{}]",
                    v.compatible_architectures.join(", ")
                )));
            }
            out.push(LayerRef {
                arn: arn.clone(),
                code: v.code.clone(),
                unzipped_size: v.unzipped_size,
            });
        }
        Ok(out)
    }

    /// Lambda's 250 MB unzipped limit, counting the function's package and its layers.
    pub(super) fn check_total_size(&self, code: &CodeRef, layers: &[LayerRef]) -> Result<()> {
        if layers.is_empty() {
            return Ok(()); // the code store already held the package alone to the limit
        }
        let own = self
            .code
            .unzipped_size(&code.sha256_hex)
            .map_err(code_error)?;
        let total = layers
            .iter()
            .fold(own, |t, l| t.saturating_add(l.unzipped_size));
        let limit = self.code.limits().max_unzipped_bytes;
        if total > limit {
            return Err(ControlError::invalid(format!(
                "Function code combined with layers exceeds the maximum allowed size of {limit} bytes. The actual size is {total} bytes."
            )));
        }
        Ok(())
    }

    /// Builds the `/opt` tree of `layers` (once per distinct list). Hold the returned guard until
    /// the configuration that uses the tree is published, so garbage collection waits for it.
    pub(super) fn prepare_opt(
        &self,
        layers: &[LayerRef],
    ) -> Result<Option<crate::code_gc::UploadGuard>> {
        let Some(address) = layer::opt_address(layers) else {
            return Ok(None);
        };
        let guard = self.code.gc().upload();
        let packages: Vec<&str> = layers.iter().map(|l| l.code.sha256_hex.as_str()).collect();
        self.code
            .merge_layers(&address, &packages)
            .map_err(ControlError::service)?;
        Ok(Some(guard))
    }

    /// Rebuilds, at start-up, merged `/opt` trees some configuration uses but the disk lacks.
    pub(super) fn ensure_opt_trees(&self) {
        let state = self.read();
        let mut done = std::collections::HashSet::new();
        for e in state.functions.values() {
            for cfg in std::iter::once(&e.latest).chain(e.versions.values()) {
                let Some(address) = layer::opt_address(&cfg.layers) else {
                    continue;
                };
                if !done.insert(address.clone()) {
                    continue;
                }
                let packages: Vec<&str> = cfg
                    .layers
                    .iter()
                    .map(|l| l.code.sha256_hex.as_str())
                    .collect();
                if let Err(e) = self.code.merge_layers(&address, &packages) {
                    tracing::error!(function = %cfg.name, "cannot build the /opt tree of its layers: {e}");
                }
            }
        }
    }

    /// Adds what layers keep alive to a set of referenced code addresses: every live layer
    /// version's package, and each configuration's layer packages and merged `/opt` tree.
    pub(super) fn layer_references(state: &State, out: &mut std::collections::HashSet<String>) {
        for e in state.layers.values() {
            out.extend(e.versions.values().map(|v| v.code.sha256_hex.clone()));
        }
        for e in state.functions.values() {
            for cfg in std::iter::once(&e.latest).chain(e.versions.values()) {
                out.extend(cfg.layers.iter().map(|l| l.code.sha256_hex.clone()));
                out.extend(layer::opt_address(&cfg.layers));
            }
        }
    }

    /// Where the `/opt` tree of a configuration is, if it has layers (no disk access).
    pub(super) fn opt_dir_of(&self, cfg: &FunctionConfig) -> Option<PathBuf> {
        layer::opt_address(&cfg.layers).and_then(|a| self.code.opt_dir(&a))
    }
}
