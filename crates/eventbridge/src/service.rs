//! [`EventBridge`]: buses, rules and targets in memory (with their patterns, schedules and
//! target inputs compiled once), written through to the store before an answer; `PutEvents`
//! matches events against a bus's rules and hands the deliveries to [`EventDelivery`].
//!
//! The state sits behind a `std::sync::Mutex`: no `.await` happens while it is held (matching
//! collects deliveries first, then awaits the delivery path).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use updraft_pattern::Pattern;
use updraft_store::{EbOp, EventBridgeStore};

use crate::delivery::{Delivery, EventDelivery, FunctionPermissions};
use crate::model::{self, Bus, DEFAULT_BUS, Rule, Target, TargetKind};
use crate::schedule::Schedule;
use crate::transform::{JsonPath, RuleFacts, TargetInput, Transformer};

/// Error categories of the EventBridge API (the wire names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EbErrorKind {
    ResourceNotFound,
    ResourceAlreadyExists,
    InvalidEventPattern,
    Validation,
    LimitExceeded,
    Internal,
}

/// An operation's failure, with AWS's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EbError {
    pub kind: EbErrorKind,
    pub message: String,
}

impl EbError {
    pub fn new(kind: EbErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(EbErrorKind::Validation, message)
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("eventbridge: {e}");
        Self::new(EbErrorKind::Internal, "Internal error.")
    }
}

pub type EbResult<T> = Result<T, EbError>;

/// Rules a bus may hold, as AWS's default quota.
pub const MAX_RULES_PER_BUS: usize = 300;
/// Targets a rule may have.
pub const MAX_TARGETS_PER_RULE: usize = 5;
/// How many times an event may be forwarded from bus to bus before it is dropped (loops).
const MAX_BUS_HOPS: u32 = 5;

/// A rule with what is compiled from it.
struct RuleEntry {
    doc: Rule,
    pattern: Option<Pattern>,
    schedule: Option<Schedule>,
    inputs: Vec<TargetInput>,
    /// Next time a scheduled rule fires (memory only: recomputed at start).
    next_fire: Option<OffsetDateTime>,
}

type BusKey = (String, String);
type RuleKey = (String, String, String);

#[derive(Default)]
struct State {
    buses: BTreeMap<BusKey, Bus>,
    rules: BTreeMap<RuleKey, RuleEntry>,
}

/// An event as `PutEvents` (or a Lambda destination) gives it.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub source: Option<String>,
    pub detail_type: Option<String>,
    pub detail: Option<String>,
    pub resources: Vec<String>,
    pub time: Option<OffsetDateTime>,
    /// Bus name or ARN; `None` is the default bus.
    pub bus: Option<String>,
}

/// One entry's outcome: its event id, or an error code and message.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    Accepted(String),
    Failed { code: String, message: String },
}

/// What one rule's match hands one target.
struct Pending {
    kind: TargetKind,
    arn: String,
    payload: Vec<u8>,
    rule_arn: String,
    account: String,
    max_attempts: Option<u32>,
    max_age_secs: Option<u32>,
}

/// The EventBridge service of one node.
pub struct EventBridge {
    store: Arc<dyn EventBridgeStore>,
    region: String,
    state: Mutex<State>,
    delivery: Arc<dyn EventDelivery>,
    permissions: Arc<dyn FunctionPermissions>,
    /// How long one schedule minute lasts (a minute, or less on a test node).
    pub(crate) schedule_minute: Duration,
    /// Wakes the scheduler when schedules change.
    pub(crate) changed: tokio::sync::Notify,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(v: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(v as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// EventBridge's event time format: seconds, `Z`.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

fn rule_not_found(rule: &str, bus: &str) -> EbError {
    EbError::new(
        EbErrorKind::ResourceNotFound,
        format!("Rule {rule} does not exist on EventBus {bus}."),
    )
}

fn bus_not_found(bus: &str) -> EbError {
    EbError::new(
        EbErrorKind::ResourceNotFound,
        format!("Event bus {bus} does not exist."),
    )
}

/// Compiles a target's input choice.
pub fn compile_input(t: &Target) -> EbResult<TargetInput> {
    let given = [
        t.input.is_some(),
        t.input_path.is_some(),
        t.input_transformer.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(EbError::validation(
            "Only one of Input, InputPath, or InputTransformer must be provided.",
        ));
    }
    if let Some(i) = &t.input {
        if serde_json::from_str::<Value>(i).is_err() {
            return Err(EbError::validation(format!(
                "Target {} Input is not valid JSON text.",
                t.id
            )));
        }
        return Ok(TargetInput::Constant(i.clone()));
    }
    if let Some(p) = &t.input_path {
        return JsonPath::parse(p)
            .map(TargetInput::Path)
            .map_err(|_| EbError::validation(format!("Target {} InputPath is not valid.", t.id)));
    }
    if let Some(x) = &t.input_transformer {
        return Transformer::new(x.paths.clone(), x.template.clone())
            .map(TargetInput::Transformer)
            .map_err(|e| EbError::validation(format!("InputTransformer is not valid: {e}.")));
    }
    Ok(TargetInput::Event)
}

fn compile(doc: Rule) -> EbResult<RuleEntry> {
    let pattern = match &doc.event_pattern {
        Some(p) => Some(Pattern::parse(p).map_err(|e| {
            EbError::new(
                EbErrorKind::InvalidEventPattern,
                format!("Event pattern is not valid. Reason: {e}"),
            )
        })?),
        None => None,
    };
    let schedule = match &doc.schedule_expression {
        Some(s) => Some(
            Schedule::parse(s)
                .map_err(|_| EbError::validation("Parameter ScheduleExpression is not valid."))?,
        ),
        None => None,
    };
    let inputs = doc
        .targets
        .iter()
        .map(compile_input)
        .collect::<EbResult<Vec<_>>>()?;
    Ok(RuleEntry {
        doc,
        pattern,
        schedule,
        inputs,
        next_fire: None,
    })
}

/// Inputs of `PutRule`.
#[derive(Debug, Clone, Default)]
pub struct PutRule {
    pub name: String,
    pub bus: Option<String>,
    pub event_pattern: Option<String>,
    pub schedule_expression: Option<String>,
    pub state: Option<String>,
    pub description: Option<String>,
    pub role_arn: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl EventBridge {
    /// Loads every bus and rule from the store.
    pub fn open(
        store: Arc<dyn EventBridgeStore>,
        region: String,
        delivery: Arc<dyn EventDelivery>,
        permissions: Arc<dyn FunctionPermissions>,
        schedule_minute: std::time::Duration,
    ) -> EbResult<Self> {
        let snap = store.eb_snapshot().map_err(EbError::internal)?;
        let mut state = State::default();
        for b in snap.buses {
            let doc: Bus = serde_json::from_str(&b.doc).map_err(EbError::internal)?;
            state.buses.insert((b.account_id, b.name), doc);
        }
        let eb = Self {
            store,
            region,
            state: Mutex::new(State::default()),
            delivery,
            permissions,
            schedule_minute: Duration::try_from(schedule_minute).unwrap_or(Duration::minutes(1)),
            changed: tokio::sync::Notify::new(),
        };
        let now = now();
        for r in snap.rules {
            let doc: Rule = serde_json::from_str(&r.doc).map_err(EbError::internal)?;
            let mut entry = match compile(doc) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(rule = %r.name, "eventbridge: stored rule does not compile: {e}");
                    continue;
                }
            };
            eb.plan(&mut entry, now);
            state.rules.insert((r.account_id, r.bus, r.name), entry);
        }
        let scheduled = state
            .rules
            .values()
            .filter(|e| e.schedule.is_some())
            .count();
        if scheduled > 0 {
            // Fires that fell while the node was down are not replayed: each schedule resumes
            // at its next fire time after the start.
            tracing::info!(
                "eventbridge: {scheduled} scheduled rule(s) resume; fires missed while the node was down are skipped"
            );
        }
        *eb.lock() = state;
        Ok(eb)
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Sets the next fire time of a scheduled rule.
    fn plan(&self, e: &mut RuleEntry, now: OffsetDateTime) {
        e.next_fire = match (&e.schedule, e.doc.enabled()) {
            (Some(s), true) => s.next_after(from_ms(e.doc.anchor_ms), now, self.schedule_minute),
            _ => None,
        };
    }

    fn default_bus() -> Bus {
        Bus {
            name: DEFAULT_BUS.into(),
            description: None,
            created_ms: 0,
            modified_ms: 0,
            tags: BTreeMap::new(),
        }
    }

    /// Resolves a bus name or ARN of `account` (the default bus always exists).
    fn bus_of(&self, st: &State, account: &str, name_or_arn: Option<&str>) -> EbResult<String> {
        let Some(given) = name_or_arn else {
            return Ok(DEFAULT_BUS.into());
        };
        let (arn_account, name) = model::bus_name(given);
        if arn_account.is_some_and(|a| a != account) {
            return Err(bus_not_found(&name));
        }
        if name == DEFAULT_BUS || st.buses.contains_key(&(account.to_string(), name.clone())) {
            Ok(name)
        } else {
            Err(bus_not_found(&name))
        }
    }

    fn write(&self, ops: &[EbOp]) -> EbResult<()> {
        self.store.eb_apply(ops).map_err(EbError::internal)
    }

    fn rule_op(account: &str, doc: &Rule) -> EbResult<EbOp> {
        Ok(EbOp::PutRule {
            account_id: account.into(),
            bus: doc.bus.clone(),
            name: doc.name.clone(),
            doc: serde_json::to_string(doc).map_err(EbError::internal)?,
        })
    }

    fn bus_op(account: &str, doc: &Bus) -> EbResult<EbOp> {
        Ok(EbOp::PutBus {
            account_id: account.into(),
            name: doc.name.clone(),
            doc: serde_json::to_string(doc).map_err(EbError::internal)?,
        })
    }

    // ------------------------------------------------------------------------------ buses

    /// `CreateEventBus`.
    pub fn create_bus(
        &self,
        account: &str,
        name: &str,
        description: Option<String>,
        tags: Vec<(String, String)>,
    ) -> EbResult<String> {
        let mut st = self.lock();
        let key = (account.to_string(), name.to_string());
        if name == DEFAULT_BUS || st.buses.contains_key(&key) {
            return Err(EbError::new(
                EbErrorKind::ResourceAlreadyExists,
                format!("Event bus {name} already exists."),
            ));
        }
        if name.contains('/') || name.starts_with("aws.") {
            return Err(EbError::validation(format!(
                "Event bus name {name} is not valid: only partner event buses may contain '/' or start with 'aws.'."
            )));
        }
        let t = ms(now());
        let bus = Bus {
            name: name.into(),
            description,
            created_ms: t,
            modified_ms: t,
            tags: tags.into_iter().collect(),
        };
        self.write(&[Self::bus_op(account, &bus)?])?;
        st.buses.insert(key, bus);
        Ok(model::bus_arn(&self.region, account, name))
    }

    /// `DeleteEventBus`: its rules go with it; deleting a bus that does not exist succeeds.
    pub fn delete_bus(&self, account: &str, name: &str) -> EbResult<()> {
        let (_, name) = model::bus_name(name);
        if name == DEFAULT_BUS {
            return Err(EbError::validation("Cannot delete event bus default."));
        }
        let mut st = self.lock();
        let key = (account.to_string(), name.clone());
        if !st.buses.contains_key(&key) {
            return Ok(());
        }
        self.write(&[EbOp::DeleteBus {
            account_id: account.into(),
            name: name.clone(),
        }])?;
        st.buses.remove(&key);
        st.rules
            .retain(|(a, b, _), _| !(a == account && *b == name));
        drop(st);
        self.changed.notify_one();
        Ok(())
    }

    /// `DescribeEventBus`.
    pub fn describe_bus(&self, account: &str, name: Option<&str>) -> EbResult<Value> {
        let st = self.lock();
        let name = self.bus_of(&st, account, name)?;
        let bus = st
            .buses
            .get(&(account.to_string(), name.clone()))
            .cloned()
            .unwrap_or_else(Self::default_bus);
        Ok(self.bus_json(account, &bus))
    }

    fn bus_json(&self, account: &str, bus: &Bus) -> Value {
        let mut v = json!({
            "Name": bus.name,
            "Arn": model::bus_arn(&self.region, account, &bus.name),
        });
        if let Some(d) = &bus.description {
            v["Description"] = json!(d);
        }
        if bus.created_ms > 0 {
            v["CreationTime"] = json!(bus.created_ms as f64 / 1000.0);
            v["LastModifiedTime"] = json!(bus.modified_ms as f64 / 1000.0);
        }
        v
    }

    /// `ListEventBuses`: the default bus and the account's own, by name.
    pub fn list_buses(&self, account: &str, prefix: Option<&str>) -> Vec<Value> {
        let st = self.lock();
        let mut out = Vec::new();
        let default = st
            .buses
            .get(&(account.to_string(), DEFAULT_BUS.to_string()))
            .cloned()
            .unwrap_or_else(Self::default_bus);
        let mut all: Vec<&Bus> = st
            .buses
            .iter()
            .filter(|((a, n), _)| a == account && n != DEFAULT_BUS)
            .map(|(_, b)| b)
            .collect();
        all.push(&default);
        all.sort_by(|a, b| a.name.cmp(&b.name));
        for b in all {
            if prefix.is_none_or(|p| b.name.starts_with(p)) {
                out.push(self.bus_json(account, b));
            }
        }
        out
    }

    // ------------------------------------------------------------------------------ rules

    /// `PutRule`: creates or updates; an update keeps targets and tags.
    pub fn put_rule(&self, account: &str, input: PutRule) -> EbResult<String> {
        if input.event_pattern.is_none() && input.schedule_expression.is_none() {
            return Err(EbError::validation(
                "Parameter(s) EventPattern or ScheduleExpression must be specified.",
            ));
        }
        if let Some(s) = input.state.as_deref()
            && !matches!(
                s,
                "ENABLED" | "DISABLED" | "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
            )
        {
            return Err(EbError::validation(format!(
                "1 validation error detected: Value '{s}' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS, DISABLED, ENABLED]"
            )));
        }
        let mut st = self.lock();
        let bus = self.bus_of(&st, account, input.bus.as_deref())?;
        if input.schedule_expression.is_some() && bus != DEFAULT_BUS {
            return Err(EbError::validation(
                "ScheduleExpression is supported only on the default event bus.",
            ));
        }
        let key = (account.to_string(), bus.clone(), input.name.clone());
        let existing = st.rules.get(&key).map(|e| e.doc.clone());
        if existing.is_none()
            && st
                .rules
                .keys()
                .filter(|(a, b, _)| a == account && *b == bus)
                .count()
                >= MAX_RULES_PER_BUS
        {
            return Err(EbError::new(
                EbErrorKind::LimitExceeded,
                "The requested resource exceeds the maximum number allowed.",
            ));
        }
        let t = now();
        let state = input.state.unwrap_or_else(|| "ENABLED".into());
        // The rhythm of a rate restarts when the expression changes or the rule is enabled.
        let anchor_ms = match &existing {
            Some(e)
                if e.schedule_expression == input.schedule_expression
                    && (e.enabled() || state == "DISABLED") =>
            {
                e.anchor_ms
            }
            _ => ms(t),
        };
        let doc = Rule {
            name: input.name.clone(),
            bus: bus.clone(),
            description: input.description,
            event_pattern: input.event_pattern,
            schedule_expression: input.schedule_expression,
            state,
            role_arn: input.role_arn,
            created_by: account.to_string(),
            anchor_ms,
            tags: match &existing {
                Some(e) => e.tags.clone(),
                None => input.tags.into_iter().collect(),
            },
            targets: existing.map(|e| e.targets).unwrap_or_default(),
        };
        let mut entry = compile(doc)?;
        self.write(&[Self::rule_op(account, &entry.doc)?])?;
        self.plan(&mut entry, t);
        st.rules.insert(key, entry);
        drop(st);
        self.changed.notify_one();
        Ok(model::rule_arn(&self.region, account, &bus, &input.name))
    }

    fn with_rule<T>(
        &self,
        account: &str,
        bus: Option<&str>,
        rule: &str,
        f: impl FnOnce(&Self, &mut State, RuleKey) -> EbResult<T>,
    ) -> EbResult<T> {
        let mut st = self.lock();
        let bus = self.bus_of(&st, account, bus)?;
        let key = (account.to_string(), bus.clone(), rule.to_string());
        if !st.rules.contains_key(&key) {
            return Err(rule_not_found(rule, &bus));
        }
        f(self, &mut st, key)
    }

    /// Replaces a rule's document (already validated) in the store, then in memory.
    fn replace_rule(&self, st: &mut State, key: &RuleKey, doc: Rule) -> EbResult<()> {
        let mut entry = compile(doc)?;
        self.write(&[Self::rule_op(&key.0, &entry.doc)?])?;
        self.plan(&mut entry, now());
        st.rules.insert(key.clone(), entry);
        self.changed.notify_one();
        Ok(())
    }

    /// `DescribeRule`.
    pub fn describe_rule(&self, account: &str, bus: Option<&str>, rule: &str) -> EbResult<Value> {
        self.with_rule(account, bus, rule, |s, st, key| {
            let mut v = s.rule_json(account, &st.rules[&key].doc);
            v["CreatedBy"] = json!(account);
            Ok(v)
        })
    }

    fn rule_json(&self, account: &str, r: &Rule) -> Value {
        let mut v = json!({
            "Name": r.name,
            "Arn": model::rule_arn(&self.region, account, &r.bus, &r.name),
            "State": r.state,
            "EventBusName": r.bus,
        });
        if let Some(p) = &r.event_pattern {
            v["EventPattern"] = json!(p);
        }
        if let Some(s) = &r.schedule_expression {
            v["ScheduleExpression"] = json!(s);
        }
        if let Some(d) = &r.description {
            v["Description"] = json!(d);
        }
        if let Some(a) = &r.role_arn {
            v["RoleArn"] = json!(a);
        }
        v
    }

    /// `ListRules`: rules of a bus by name, from `after` (exclusive), at most `limit`; returns
    /// the page and the name to continue after.
    pub fn list_rules(
        &self,
        account: &str,
        bus: Option<&str>,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> EbResult<(Vec<Value>, Option<String>)> {
        let st = self.lock();
        let bus = self.bus_of(&st, account, bus)?;
        let all: Vec<&Rule> = st
            .rules
            .iter()
            .filter(|((a, b, n), _)| {
                a == account
                    && *b == bus
                    && prefix.is_none_or(|p| n.starts_with(p))
                    && after.is_none_or(|x| n.as_str() > x)
            })
            .map(|(_, e)| &e.doc)
            .collect();
        let more = all.len() > limit;
        let page: Vec<Value> = all
            .iter()
            .take(limit)
            .map(|r| self.rule_json(account, r))
            .collect();
        let next = more.then(|| all[limit - 1].name.clone());
        Ok((page, next))
    }

    /// `DeleteRule`: a rule with targets stays (unless forced); a missing rule is no error.
    pub fn delete_rule(
        &self,
        account: &str,
        bus: Option<&str>,
        rule: &str,
        force: bool,
    ) -> EbResult<()> {
        let mut st = self.lock();
        let bus = self.bus_of(&st, account, bus)?;
        let key = (account.to_string(), bus.clone(), rule.to_string());
        let Some(e) = st.rules.get(&key) else {
            return Ok(());
        };
        if !e.doc.targets.is_empty() && !force {
            return Err(EbError::validation(
                "Rule can't be deleted since it has targets.",
            ));
        }
        self.write(&[EbOp::DeleteRule {
            account_id: account.into(),
            bus,
            name: rule.into(),
        }])?;
        st.rules.remove(&key);
        drop(st);
        self.changed.notify_one();
        Ok(())
    }

    /// `EnableRule` / `DisableRule`.
    pub fn set_rule_state(
        &self,
        account: &str,
        bus: Option<&str>,
        rule: &str,
        enabled: bool,
    ) -> EbResult<()> {
        self.with_rule(account, bus, rule, |s, st, key| {
            let mut doc = st.rules[&key].doc.clone();
            if doc.enabled() == enabled {
                return Ok(());
            }
            doc.state = if enabled { "ENABLED" } else { "DISABLED" }.into();
            if enabled {
                doc.anchor_ms = ms(now());
            }
            s.replace_rule(st, &key, doc)
        })
    }

    // ---------------------------------------------------------------------------- targets

    /// `PutTargets`: returns the targets refused, with (id, code, message).
    pub fn put_targets(
        &self,
        account: &str,
        bus: Option<&str>,
        rule: &str,
        targets: Vec<Target>,
    ) -> EbResult<Vec<(String, String, String)>> {
        self.with_rule(account, bus, rule, |s, st, key| {
            let mut doc = st.rules[&key].doc.clone();
            let mut failed = Vec::new();
            let mut seen = HashSet::new();
            for t in targets {
                if !seen.insert(t.id.clone()) {
                    return Err(EbError::validation(format!(
                        "The same target ID {} is used more than once.",
                        t.id
                    )));
                }
                compile_input(&t)?;
                if model::target_kind(&t.arn) == TargetKind::Other {
                    failed.push((
                        t.id.clone(),
                        "ValidationException".into(),
                        format!(
                            "Target type of {} is not supported by Updraft: targets are Lambda functions, SQS queues and event buses.",
                            t.arn
                        ),
                    ));
                    continue;
                }
                match doc.targets.iter_mut().find(|x| x.id == t.id) {
                    Some(x) => *x = t,
                    None => doc.targets.push(t),
                }
            }
            if doc.targets.len() > MAX_TARGETS_PER_RULE {
                return Err(EbError::new(
                    EbErrorKind::LimitExceeded,
                    format!(
                        "The requested resource exceeds the maximum number allowed. Rule {rule} may have at most {MAX_TARGETS_PER_RULE} targets."
                    ),
                ));
            }
            s.replace_rule(st, &key, doc)?;
            Ok(failed)
        })
    }

    /// `ListTargetsByRule`.
    pub fn list_targets(
        &self,
        account: &str,
        bus: Option<&str>,
        rule: &str,
    ) -> EbResult<Vec<Target>> {
        self.with_rule(account, bus, rule, |_, st, key| {
            Ok(st.rules[&key].doc.targets.clone())
        })
    }

    /// `ListRuleNamesByTarget`: names of the bus's rules with a target of this ARN, by name.
    pub fn rules_by_target(
        &self,
        account: &str,
        bus: Option<&str>,
        arn: &str,
    ) -> EbResult<Vec<String>> {
        let st = self.lock();
        let bus = self.bus_of(&st, account, bus)?;
        Ok(st
            .rules
            .iter()
            .filter(|((a, b, _), e)| {
                a == account && *b == bus && e.doc.targets.iter().any(|t| t.arn == arn)
            })
            .map(|((_, _, n), _)| n.clone())
            .collect())
    }

    /// `RemoveTargets`: ids the rule does not have are ignored.
    pub fn remove_targets(
        &self,
        account: &str,
        bus: Option<&str>,
        rule: &str,
        ids: &[String],
    ) -> EbResult<()> {
        self.with_rule(account, bus, rule, |s, st, key| {
            let mut doc = st.rules[&key].doc.clone();
            doc.targets.retain(|t| !ids.contains(&t.id));
            s.replace_rule(st, &key, doc)
        })
    }

    // ------------------------------------------------------------------------------- tags

    fn tags_of<T>(
        &self,
        account: &str,
        arn: &str,
        f: impl FnOnce(&mut BTreeMap<String, String>) -> T,
        save: bool,
    ) -> EbResult<T> {
        let not_found = || {
            EbError::new(
                EbErrorKind::ResourceNotFound,
                format!("Resource {arn} does not exist."),
            )
        };
        let mut st = self.lock();
        match model::parse_arn(arn) {
            Some(model::Resource::Bus { account: a, bus }) if a == account => {
                let key = (account.to_string(), bus.clone());
                let mut doc = match st.buses.get(&key) {
                    Some(b) => b.clone(),
                    None if bus == DEFAULT_BUS => Self::default_bus(),
                    None => return Err(not_found()),
                };
                let out = f(&mut doc.tags);
                if save {
                    self.write(&[Self::bus_op(account, &doc)?])?;
                    st.buses.insert(key, doc);
                }
                Ok(out)
            }
            Some(model::Resource::Rule {
                account: a,
                bus,
                rule,
            }) if a == account => {
                let key = (account.to_string(), bus, rule);
                let Some(e) = st.rules.get(&key) else {
                    return Err(not_found());
                };
                let mut doc = e.doc.clone();
                let out = f(&mut doc.tags);
                if save {
                    self.write(&[Self::rule_op(account, &doc)?])?;
                    if let Some(e) = st.rules.get_mut(&key) {
                        e.doc = doc;
                    }
                }
                Ok(out)
            }
            _ => Err(not_found()),
        }
    }

    pub fn tag(&self, account: &str, arn: &str, tags: Vec<(String, String)>) -> EbResult<()> {
        self.tags_of(account, arn, |t| t.extend(tags), true)
    }

    pub fn untag(&self, account: &str, arn: &str, keys: &[String]) -> EbResult<()> {
        self.tags_of(account, arn, |t| t.retain(|k, _| !keys.contains(k)), true)
    }

    pub fn list_tags(&self, account: &str, arn: &str) -> EbResult<BTreeMap<String, String>> {
        self.tags_of(account, arn, |t| t.clone(), false)
    }

    // ----------------------------------------------------------------------------- events

    /// `PutEvents` (and events from inside the node, e.g. Lambda destinations): validates each
    /// entry, matches the accepted ones against their bus's rules, and hands the deliveries to
    /// the delivery path before answering. `bus` is the default for entries that name none.
    pub async fn put_internal(
        &self,
        account: &str,
        bus: Option<&str>,
        entries: Vec<NewEvent>,
    ) -> EbResult<Vec<PutOutcome>> {
        self.put_hops(account, bus, entries, 0).await
    }

    fn put_hops<'a>(
        &'a self,
        account: &'a str,
        bus: Option<&'a str>,
        entries: Vec<NewEvent>,
        hops: u32,
    ) -> crate::BoxFuture<'a, EbResult<Vec<PutOutcome>>> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(entries.len());
            let mut pending = Vec::new();
            let ingestion = now();
            {
                let st = self.lock();
                for e in entries {
                    let bus_name = e.bus.as_deref().or(bus);
                    match self.event_of(&st, account, bus_name, &e, ingestion) {
                        Ok((bus_name, event, id)) => {
                            self.match_event(
                                &st,
                                account,
                                &bus_name,
                                &event,
                                ingestion,
                                &mut pending,
                            );
                            outcomes.push(PutOutcome::Accepted(id));
                        }
                        Err((code, message)) => outcomes.push(PutOutcome::Failed { code, message }),
                    }
                }
            }
            self.deliver(pending, hops).await?;
            Ok(outcomes)
        })
    }

    /// Builds the event of one entry, or the entry's error code and message.
    fn event_of(
        &self,
        st: &State,
        account: &str,
        bus: Option<&str>,
        e: &NewEvent,
        ingestion: OffsetDateTime,
    ) -> Result<(String, Value, String), (String, String)> {
        let required = |field: &str, v: &Option<String>| match v {
            Some(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err((
                "InvalidArgument".to_string(),
                format!("Parameter {field} is not valid. Reason: {field} is a required argument."),
            )),
        };
        let source = required("Source", &e.source)?;
        let detail_type = required("DetailType", &e.detail_type)?;
        let detail_text = required("Detail", &e.detail)?;
        let detail: Value = match serde_json::from_str(&detail_text) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(("MalformedDetail".into(), "Detail is malformed.".into())),
        };
        let bus = self
            .bus_of(st, account, bus)
            .map_err(|e| ("ResourceNotFoundException".to_string(), e.message))?;
        let id = uuid::Uuid::new_v4().to_string();
        let event = json!({
            "version": "0",
            "id": id,
            "detail-type": detail_type,
            "source": source,
            "account": account,
            "time": format_time(e.time.unwrap_or(ingestion)),
            "region": self.region,
            "resources": e.resources,
            "detail": detail,
        });
        Ok((bus, event, id))
    }

    /// Collects what every enabled pattern rule of the bus that matches `event` sends.
    fn match_event(
        &self,
        st: &State,
        account: &str,
        bus: &str,
        event: &Value,
        ingestion: OffsetDateTime,
        out: &mut Vec<Pending>,
    ) {
        let lo = (account.to_string(), bus.to_string(), String::new());
        for ((a, b, _), entry) in st.rules.range(lo..) {
            if a != account || b != bus {
                break;
            }
            let Some(p) = &entry.pattern else { continue };
            if entry.doc.enabled() && p.matches(event) {
                self.targets_of(account, entry, event, ingestion, out);
            }
        }
    }

    fn targets_of(
        &self,
        account: &str,
        entry: &RuleEntry,
        event: &Value,
        ingestion: OffsetDateTime,
        out: &mut Vec<Pending>,
    ) {
        let rule_arn = model::rule_arn(&self.region, account, &entry.doc.bus, &entry.doc.name);
        let ingestion = format_time(ingestion);
        for (t, input) in entry.doc.targets.iter().zip(&entry.inputs) {
            let facts = RuleFacts {
                rule_arn: &rule_arn,
                rule_name: &entry.doc.name,
                ingestion_time: &ingestion,
            };
            out.push(Pending {
                kind: model::target_kind(&t.arn),
                arn: t.arn.clone(),
                payload: input.render(event, &facts),
                rule_arn: rule_arn.clone(),
                account: account.to_string(),
                max_attempts: t.max_attempts,
                max_age_secs: t.max_age_secs,
            });
        }
    }

    /// Hands matched targets over: functions (when their policy allows the rule) to the
    /// delivery path, buses to their own rules. Refusals are logged, never silent.
    async fn deliver(&self, pending: Vec<Pending>, hops: u32) -> EbResult<()> {
        let mut deliveries = Vec::new();
        for p in pending {
            match p.kind {
                TargetKind::Function => {
                    match self
                        .permissions
                        .allows_events(&p.arn, &p.rule_arn, &p.account)
                    {
                        Ok(()) => deliveries.push(Delivery {
                            account: p.account,
                            target_arn: p.arn,
                            payload: p.payload,
                            source_arn: p.rule_arn,
                            max_attempts: p.max_attempts,
                            max_age_secs: p.max_age_secs,
                        }),
                        Err(reason) => tracing::warn!(
                            rule = %p.rule_arn,
                            target = %p.arn,
                            "eventbridge: delivery refused: {reason}"
                        ),
                    }
                }
                // The queue's policy is checked when the message is sent, so a refusal is kept
                // as a failed delivery with its reason.
                TargetKind::Queue => deliveries.push(Delivery {
                    account: p.account,
                    target_arn: p.arn,
                    payload: p.payload,
                    source_arn: p.rule_arn,
                    max_attempts: p.max_attempts,
                    max_age_secs: p.max_age_secs,
                }),
                TargetKind::Bus(acct, bus) => {
                    if hops + 1 >= MAX_BUS_HOPS {
                        tracing::warn!(rule = %p.rule_arn, target = %p.arn, "eventbridge: delivery refused: the event crossed {MAX_BUS_HOPS} buses (a loop?)");
                        continue;
                    }
                    if acct != p.account {
                        tracing::warn!(rule = %p.rule_arn, target = %p.arn, "eventbridge: delivery refused: buses of other accounts are not reachable");
                        continue;
                    }
                    let Ok(event) = serde_json::from_slice::<Value>(&p.payload) else {
                        tracing::warn!(rule = %p.rule_arn, target = %p.arn, "eventbridge: delivery refused: the target's input is not an event");
                        continue;
                    };
                    let forwarded = NewEvent {
                        source: event["source"].as_str().map(str::to_string),
                        detail_type: event["detail-type"].as_str().map(str::to_string),
                        detail: Some(event["detail"].to_string()),
                        resources: event["resources"]
                            .as_array()
                            .map(|r| {
                                r.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        time: event["time"]
                            .as_str()
                            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
                        bus: Some(bus.clone()),
                    };
                    let out = self
                        .put_hops(&acct, None, vec![forwarded], hops + 1)
                        .await?;
                    if let Some(PutOutcome::Failed { message, .. }) = out.first() {
                        tracing::warn!(rule = %p.rule_arn, target = %p.arn, "eventbridge: delivery refused: {message}");
                    }
                }
                TargetKind::Other => {
                    tracing::warn!(rule = %p.rule_arn, target = %p.arn, "eventbridge: delivery refused: unsupported target type")
                }
            }
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        self.delivery
            .enqueue(deliveries)
            .await
            .map_err(EbError::internal)
    }

    /// `TestEventPattern`.
    pub fn test_pattern(pattern: &str, event: &str) -> EbResult<bool> {
        let p = Pattern::parse(pattern).map_err(|e| {
            EbError::new(
                EbErrorKind::InvalidEventPattern,
                format!("Event pattern is not valid. Reason: {e}"),
            )
        })?;
        let ev: Value = serde_json::from_str(event)
            .map_err(|_| EbError::validation("Parameter Event is not valid."))?;
        let has = |k: &str| ev.get(k).is_some_and(|v| v.is_string());
        if !["id", "account", "source", "time", "region", "detail-type"]
            .iter()
            .all(|k| has(k))
        {
            return Err(EbError::validation("Parameter Event is not valid."));
        }
        Ok(p.matches(&ev))
    }

    // ------------------------------------------------------------------------- schedules

    /// Fires every scheduled rule due at `now` (once each, however late) and returns when the
    /// next one is due.
    pub(crate) async fn fire_due(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let mut pending = Vec::new();
        let next = {
            let mut st = self.lock();
            let minute = self.schedule_minute;
            for ((account, _, _), e) in st.rules.iter_mut() {
                let Some(due) = e.next_fire else { continue };
                if due > now {
                    continue;
                }
                let rule_arn = model::rule_arn(&self.region, account, &e.doc.bus, &e.doc.name);
                let event = json!({
                    "version": "0",
                    "id": uuid::Uuid::new_v4().to_string(),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": account,
                    "time": format_time(due),
                    "region": self.region,
                    "resources": [rule_arn],
                    "detail": {},
                });
                tracing::info!(rule = %rule_arn, "eventbridge: scheduled rule fires");
                self.targets_of(account, e, &event, now, &mut pending);
                e.next_fire = e
                    .schedule
                    .as_ref()
                    .and_then(|s| s.next_after(from_ms(e.doc.anchor_ms), now, minute));
            }
            st.rules.values().filter_map(|e| e.next_fire).min()
        };
        if let Err(e) = self.deliver(pending, 0).await {
            tracing::warn!("eventbridge: scheduled deliveries not accepted: {e}");
        }
        next
    }
}

#[cfg(test)]
mod tests;
