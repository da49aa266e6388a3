//! Lambda's JSON wire shapes: rendering the domain model and decoding request bodies.
//!
//! Architecture invariant: this module (with `error`) is the only place that knows Lambda's
//! field names; the control plane and the engine speak domain types.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use updraft_control::model::{Alias, FunctionConfig};
use updraft_control::{ConfigUpdate, CreateFunction, LoggingInput};

use crate::error::{ApiError, ApiResult};

/// How far along a resource is, as shown in the answer to the call that changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Settled (`State: Active`, `LastUpdateStatus: Successful`), as every read shows.
    Settled,
    /// Just created: `State: Pending`, as `CreateFunction` and `PublishVersion` answer.
    Creating,
    /// Just updated: `LastUpdateStatus: InProgress`, as the update calls answer.
    Updating,
}

/// Renders a `FunctionConfiguration`.
pub fn function_configuration(
    region: &str,
    account_id: &str,
    c: &FunctionConfig,
    phase: Phase,
) -> Value {
    let base = updraft_control::arn::function_arn(region, account_id, &c.name);
    let arn = if c.version == "$LATEST" {
        base
    } else {
        format!("{base}:{}", c.version)
    };
    let mut m = Map::new();
    m.insert("FunctionName".into(), json!(c.name));
    m.insert("FunctionArn".into(), json!(arn));
    if let Some(r) = &c.runtime {
        m.insert("Runtime".into(), json!(r));
    }
    m.insert("Role".into(), json!(c.role));
    if let Some(h) = &c.handler {
        m.insert("Handler".into(), json!(h));
    }
    m.insert("CodeSize".into(), json!(c.code.code_size));
    m.insert("Description".into(), json!(c.description));
    m.insert("Timeout".into(), json!(c.timeout));
    m.insert("MemorySize".into(), json!(c.memory_size));
    m.insert("LastModified".into(), json!(c.last_modified));
    m.insert("CodeSha256".into(), json!(c.code.code_sha256));
    m.insert("Version".into(), json!(c.version));
    if let Some(env) = &c.environment {
        m.insert("Environment".into(), json!({ "Variables": env }));
    }
    m.insert("TracingConfig".into(), json!({ "Mode": c.tracing_mode }));
    if let Some(t) = &c.dead_letter_target {
        m.insert("DeadLetterConfig".into(), json!({ "TargetArn": t }));
    }
    if !c.layers.is_empty() {
        let layers: Vec<Value> = c
            .layers
            .iter()
            .map(|l| json!({ "Arn": l.arn, "CodeSize": l.code.code_size }))
            .collect();
        m.insert("Layers".into(), Value::Array(layers));
    }
    m.insert("RevisionId".into(), json!(c.revision_id));
    match phase {
        Phase::Creating => {
            m.insert("State".into(), json!("Pending"));
            m.insert(
                "StateReason".into(),
                json!("The function is being created."),
            );
            m.insert("StateReasonCode".into(), json!("Creating"));
        }
        _ => {
            m.insert("State".into(), json!("Active"));
        }
    }
    match phase {
        Phase::Updating => {
            m.insert("LastUpdateStatus".into(), json!("InProgress"));
            m.insert(
                "LastUpdateStatusReason".into(),
                json!("The function is being created."),
            );
            m.insert("LastUpdateStatusReasonCode".into(), json!("Creating"));
        }
        _ => {
            m.insert("LastUpdateStatus".into(), json!("Successful"));
        }
    }
    m.insert("PackageType".into(), json!("Zip"));
    m.insert("Architectures".into(), json!(c.architectures));
    m.insert(
        "EphemeralStorage".into(),
        json!({ "Size": c.ephemeral_storage }),
    );
    m.insert(
        "SnapStart".into(),
        json!({ "ApplyOn": "None", "OptimizationStatus": "Off" }),
    );
    let mut logging = Map::new();
    logging.insert("LogFormat".into(), json!(c.logging.log_format));
    if let Some(l) = &c.logging.application_log_level {
        logging.insert("ApplicationLogLevel".into(), json!(l));
    }
    if let Some(l) = &c.logging.system_log_level {
        logging.insert("SystemLogLevel".into(), json!(l));
    }
    logging.insert("LogGroup".into(), json!(c.logging.log_group));
    m.insert("LoggingConfig".into(), Value::Object(logging));
    Value::Object(m)
}

/// Renders an `AliasConfiguration`.
pub fn alias_configuration(region: &str, account_id: &str, function: &str, a: &Alias) -> Value {
    let mut v = json!({
        "AliasArn": format!("{}:{}", updraft_control::arn::function_arn(region, account_id, function), a.name),
        "Name": a.name,
        "FunctionVersion": a.function_version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if !a.additional_version_weights.is_empty() {
        v["RoutingConfig"] = json!({ "AdditionalVersionWeights": a.additional_version_weights });
    }
    v
}

/// Parses a JSON request body into `T`, answering malformed input as Lambda does.
pub fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> ApiResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "ValidationException",
                format!("1 validation error detected: {e}"),
            )
        } else {
            ApiError::bad_content(format!("Could not parse request body into json: {e}"))
        }
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeInput {
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    pub s3_key: Option<String>,
    #[serde(rename = "S3ObjectVersion")]
    pub s3_object_version: Option<String>,
    pub image_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentInput {
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SizeInput {
    pub size: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModeInput {
    pub mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingWire {
    pub log_format: Option<String>,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub log_group: Option<String>,
}

impl From<LoggingWire> for LoggingInput {
    fn from(l: LoggingWire) -> Self {
        LoggingInput {
            log_format: l.log_format,
            application_log_level: l.application_log_level,
            system_log_level: l.system_log_level,
            log_group: l.log_group,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionWire {
    pub function_name: Option<String>,
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub code: Option<CodeInput>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    #[serde(default)]
    pub publish: bool,
    pub environment: Option<EnvironmentInput>,
    pub ephemeral_storage: Option<SizeInput>,
    pub logging_config: Option<LoggingWire>,
    pub tracing_config: Option<ModeInput>,
    pub architectures: Option<Vec<String>>,
    pub package_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub layers: Option<Vec<String>>,
    pub dead_letter_config: Option<DeadLetterWire>,
}

/// `DeadLetterConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeadLetterWire {
    pub target_arn: Option<String>,
}

pub(crate) fn missing(field: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "ValidationException",
        format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ),
    )
}

/// Reads a code package from the node's object store for `Code.S3Bucket`/`S3Key`; the
/// binary implements it over the object store, with the caller's read access checked.
pub trait CodeObjects: Send + Sync {
    /// The object's bytes, or S3's error code and message.
    fn read_code(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Vec<u8>, (String, String)>;
}

/// Where `Code.S3Bucket` packages come from, and for whom.
pub struct CodeFrom<'a> {
    pub objects: Option<&'a dyn CodeObjects>,
    pub account: &'a str,
}

/// Decodes `Code` into zip bytes: inline (`ZipFile`) or from the object store.
pub fn decode_code(code: &CodeInput, from: &CodeFrom<'_>) -> ApiResult<Vec<u8>> {
    if code.image_uri.is_some() {
        return Err(ApiError::invalid(
            "Container image packages are not supported by Updraft; use a .zip deployment package.",
        ));
    }
    if code.s3_bucket.is_some() || code.s3_key.is_some() {
        if code.zip_file.is_some() {
            return Err(ApiError::invalid(
                "Please specify only one source for function code: Code.ZipFile or Code.S3Bucket/S3Key.",
            ));
        }
        let (Some(bucket), Some(key)) = (code.s3_bucket.as_deref(), code.s3_key.as_deref()) else {
            return Err(ApiError::invalid(
                "Code.S3Bucket and Code.S3Key must be given together.",
            ));
        };
        let Some(objects) = from.objects else {
            return Err(ApiError::invalid(
                "Code.S3Bucket/S3Key cannot be read: the object store is not running on this node.",
            ));
        };
        return objects
            .read_code(from.account, bucket, key, code.s3_object_version.as_deref())
            .map_err(|(code, message)| {
                ApiError::invalid(format!(
                    "Error occurred while GetObject. S3 Error Code: {code}. S3 Error Message: {message}"
                ))
            });
    }
    let zip = code.zip_file.as_deref().ok_or_else(|| {
        ApiError::invalid("Please provide a source for function code (Code.ZipFile).")
    })?;
    base64::engine::general_purpose::STANDARD
        .decode(zip)
        .map_err(|_| {
            ApiError::invalid(
                "Could not unzip uploaded file. Please check your file, then try to upload again.",
            )
        })
}

impl CreateFunctionWire {
    pub fn into_input(self, from: &CodeFrom<'_>) -> ApiResult<CreateFunction> {
        if self.package_type.as_deref().is_some_and(|p| p != "Zip") {
            return Err(ApiError::invalid("Updraft supports PackageType Zip only."));
        }
        let name = self.function_name.ok_or_else(|| missing("functionName"))?;
        let role = self.role.ok_or_else(|| missing("role"))?;
        let code = self.code.ok_or_else(|| missing("code"))?;
        let zip = decode_code(&code, from)?;
        Ok(CreateFunction {
            name,
            runtime: self.runtime,
            role,
            handler: self.handler,
            description: self.description,
            timeout: self.timeout,
            memory_size: self.memory_size,
            environment: self.environment.map(|e| e.variables),
            ephemeral_storage: self.ephemeral_storage.map(|s| s.size),
            logging: self.logging_config.map(Into::into),
            tracing_mode: self.tracing_config.and_then(|t| t.mode),
            architectures: self.architectures,
            tags: self.tags,
            publish: self.publish,
            zip,
            dead_letter_target: self.dead_letter_config.and_then(|d| d.target_arn),
            layers: self.layers,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfigWire {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<EnvironmentInput>,
    pub ephemeral_storage: Option<SizeInput>,
    pub logging_config: Option<LoggingWire>,
    pub tracing_config: Option<ModeInput>,
    pub revision_id: Option<String>,
    pub layers: Option<Vec<String>>,
    pub dead_letter_config: Option<DeadLetterWire>,
}

impl UpdateConfigWire {
    pub fn into_input(self) -> ApiResult<ConfigUpdate> {
        Ok(ConfigUpdate {
            runtime: self.runtime,
            role: self.role,
            handler: self.handler,
            description: self.description,
            timeout: self.timeout,
            memory_size: self.memory_size,
            environment: self.environment.map(|e| e.variables),
            ephemeral_storage: self.ephemeral_storage.map(|s| s.size),
            logging: self.logging_config.map(Into::into),
            tracing_mode: self.tracing_config.and_then(|t| t.mode),
            revision_id: self.revision_id,
            // An empty `DeadLetterConfig` (or an empty `TargetArn`) removes the target.
            dead_letter_target: self
                .dead_letter_config
                .map(|d| d.target_arn.unwrap_or_default()),
            layers: self.layers,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCodeWire {
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    pub s3_key: Option<String>,
    #[serde(rename = "S3ObjectVersion")]
    pub s3_object_version: Option<String>,
    pub image_uri: Option<String>,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub dry_run: bool,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishVersionWire {
    pub code_sha256: Option<String>,
    pub description: Option<String>,
    pub revision_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingWire {
    #[serde(default)]
    pub additional_version_weights: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasWire {
    pub name: Option<String>,
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing_config: Option<RoutingWire>,
    pub revision_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConcurrencyWire {
    pub reserved_concurrent_executions: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsWire {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

pub fn require<T>(v: Option<T>, field: &str) -> ApiResult<T> {
    v.ok_or_else(|| missing(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_invalid_request_content() {
        let e = parse_body::<CreateFunctionWire>(b"{not json").unwrap_err();
        assert_eq!(e.code, "InvalidRequestContentException");
        let e = parse_body::<CreateFunctionWire>(br#"{"Timeout": "x"}"#).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(parse_body::<CreateFunctionWire>(b"").is_ok());
    }

    #[test]
    fn s3_code_without_an_object_store_is_refused_clearly() {
        let c = CodeInput {
            s3_bucket: Some("b".into()),
            s3_key: Some("k".into()),
            ..Default::default()
        };
        let from = CodeFrom {
            objects: None,
            account: "111111111111",
        };
        let e = decode_code(&c, &from).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValueException");
        assert!(e.message.contains("S3"));
    }
}
