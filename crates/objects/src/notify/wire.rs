//! Put/GetBucketNotificationConfiguration: S3's XML both ways, validation (known events,
//! prefix/suffix filters, no overlapping configurations, reachable destinations) and the
//! `s3:TestEvent` S3 sends to queues when a configuration is put.

use std::sync::Arc;

use http::StatusCode;
use serde_json::json;

use super::{Config, Delivery, Destination, EVENTS, Rule};
use crate::error::S3Error;
use crate::wire::{Ctx, S3Body, S3Service, iso8601, status_only, xml_response};
use crate::xml::{Doc, Element, parse};

fn invalid(message: &str, name: &str, value: &str) -> S3Error {
    S3Error::invalid_argument(message)
        .with("ArgumentName", name)
        .with("ArgumentValue", value)
}

fn rule_of(el: &Element, arn_name: &str) -> Result<Rule, S3Error> {
    let arn = el.text_of(arn_name).unwrap_or("").trim().to_string();
    if arn.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    let mut rule = Rule {
        id: el
            .text_of("Id")
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        arn,
        ..Default::default()
    };
    for e in el.all("Event") {
        let e = e.text.trim();
        if !EVENTS.contains(&e) {
            return Err(invalid(
                "The event is not supported for notifications",
                "Event",
                e,
            ));
        }
        rule.events.push(e.to_string());
    }
    if rule.events.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    if let Some(f) = el.child("Filter") {
        for fr in f
            .child("S3Key")
            .into_iter()
            .flat_map(|k| k.all("FilterRule"))
        {
            let name = fr.text_of("Name").unwrap_or("").to_ascii_lowercase();
            let value = fr.text_of("Value").unwrap_or("").to_string();
            let slot = match name.as_str() {
                "prefix" => &mut rule.prefix,
                "suffix" => &mut rule.suffix,
                _ => {
                    return Err(invalid(
                        "filter rule name must be either prefix or suffix",
                        "FilterRule",
                        &name,
                    ));
                }
            };
            if slot.replace(value).is_some() {
                return Err(invalid(
                    "Cannot specify more than one prefix rule in a filter.",
                    "FilterRule",
                    &name,
                ));
            }
        }
    }
    Ok(rule)
}

/// Whether two event lists share an event (wildcards included).
fn events_overlap(a: &[String], b: &[String]) -> bool {
    let covers = |x: &str, y: &str| x == y || x.strip_suffix('*').is_some_and(|p| y.starts_with(p));
    a.iter()
        .any(|x| b.iter().any(|y| covers(x, y) || covers(y, x)))
}

/// Whether two filters can both match one key.
fn filters_overlap(a: &Rule, b: &Rule) -> bool {
    let both = |x: &Option<String>, y: &Option<String>, f: fn(&str, &str) -> bool| match (x, y) {
        (Some(x), Some(y)) => f(x, y) || f(y, x),
        _ => true,
    };
    both(&a.prefix, &b.prefix, |x, y| x.starts_with(y))
        && both(&a.suffix, &b.suffix, |x, y| x.ends_with(y))
}

pub(crate) async fn put_configuration(
    svc: &Arc<S3Service>,
    ctx: &Ctx,
    doc: &[u8],
) -> Result<http::Response<S3Body>, S3Error> {
    let bucket = crate::wire::owned_bucket(svc, ctx).await?;
    let root = parse(doc)?;
    if root.name != "NotificationConfiguration" {
        return Err(S3Error::malformed_xml());
    }
    if root.child("TopicConfiguration").is_some() {
        return Err(invalid(
            "Unable to validate the following destination configurations",
            "TopicConfiguration",
            "SNS topics are not served by this node",
        ));
    }
    let mut config = Config::default();
    for el in root.all("CloudFunctionConfiguration") {
        config.functions.push(rule_of(el, "CloudFunction")?);
    }
    for el in root.all("QueueConfiguration") {
        config.queues.push(rule_of(el, "Queue")?);
    }
    config.eventbridge = root.child("EventBridgeConfiguration").is_some();
    let all: Vec<&Rule> = config
        .functions
        .iter()
        .chain(config.queues.iter())
        .collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if events_overlap(&a.events, &b.events) && filters_overlap(a, b) {
                return Err(invalid(
                    "Configurations overlap. Configurations on the same bucket cannot share a common event type.",
                    "Event",
                    &a.events.join(","),
                ));
            }
        }
        if all[..i].iter().any(|b| b.id == a.id) {
            return Err(invalid("Configuration Id must be unique", "Id", &a.id));
        }
    }
    let bucket_arn = format!("arn:aws:s3:::{}", bucket.name);
    let notifier = svc.notifier.get().cloned();
    if !all.is_empty() {
        let Some(n) = &notifier else {
            return Err(S3Error::internal(
                "notifications are not wired on this node",
            ));
        };
        let mut failed = Vec::new();
        for r in &config.functions {
            if let Err(reason) = n.check_function(&r.arn, &bucket_arn, &bucket.account) {
                tracing::info!(function = %r.arn, bucket = %bucket.name, "s3 notification refused: {reason}");
                failed.push((r.arn.clone(), "Not authorized to invoke function"));
            }
        }
        for r in &config.queues {
            if let Err(reason) = n.check_queue(&r.arn) {
                tracing::info!(queue = %r.arn, bucket = %bucket.name, "s3 notification refused: {reason}");
                failed.push((r.arn.clone(), "The destination queue does not exist"));
            }
        }
        if !failed.is_empty() {
            let mut e = S3Error::invalid_argument(
                "Unable to validate the following destination configurations",
            );
            for (arn, why) in failed.iter().take(1) {
                e = e
                    .with("ArgumentName1", arn.clone())
                    .with("ArgumentValue1", format!("{why} [{arn}]"));
            }
            return Err(e);
        }
    }
    let stored = (!config.is_empty()).then(|| serde_json::to_string(&config).unwrap_or_default());
    {
        let (name, stored) = (bucket.name.clone(), stored.clone());
        svc.blocking(move |s| s.set_notification(&name, stored.as_deref()))
            .await?;
    }
    // S3 tells each queue it is wired by a test message.
    if let Some(n) = &notifier
        && !config.queues.is_empty()
    {
        let test = json!({
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": iso8601(crate::store::now_ms()),
            "Bucket": bucket.name,
            "RequestId": ctx.request_id,
            "HostId": ctx.request_id,
        })
        .to_string();
        let deliveries = config
            .queues
            .iter()
            .map(|r| Delivery {
                destination: Destination::Queue(r.arn.clone()),
                payload: test.clone(),
                source_arn: bucket_arn.clone(),
                bucket_owner: bucket.account.clone(),
            })
            .collect();
        if let Err(e) = n.deliver(deliveries).await {
            tracing::warn!(bucket = %bucket.name, "s3 test event could not be queued: {e}");
        }
    }
    Ok(status_only(StatusCode::OK))
}

fn write_rule(d: &mut Doc, tag: &str, arn_tag: &str, r: &Rule) {
    d.open(tag).el("Id", &r.id).el(arn_tag, &r.arn);
    for e in &r.events {
        d.el("Event", e);
    }
    if r.prefix.is_some() || r.suffix.is_some() {
        d.open("Filter").open("S3Key");
        if let Some(p) = &r.prefix {
            d.open("FilterRule")
                .el("Name", "Prefix")
                .el("Value", p)
                .close("FilterRule");
        }
        if let Some(s) = &r.suffix {
            d.open("FilterRule")
                .el("Name", "Suffix")
                .el("Value", s)
                .close("FilterRule");
        }
        d.close("S3Key").close("Filter");
    }
    d.close(tag);
}

pub(crate) async fn get_configuration(
    svc: &Arc<S3Service>,
    ctx: &Ctx,
) -> Result<http::Response<S3Body>, S3Error> {
    let bucket = crate::wire::owned_bucket(svc, ctx).await?;
    let config: Config = bucket
        .notification
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let mut d = Doc::new("NotificationConfiguration");
    for r in &config.queues {
        write_rule(&mut d, "QueueConfiguration", "Queue", r);
    }
    for r in &config.functions {
        write_rule(&mut d, "CloudFunctionConfiguration", "CloudFunction", r);
    }
    if config.eventbridge {
        d.0.push_str("<EventBridgeConfiguration></EventBridgeConfiguration>");
    }
    Ok(xml_response(d.end("NotificationConfiguration")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(events: &[&str], prefix: Option<&str>, suffix: Option<&str>) -> Rule {
        Rule {
            id: "x".into(),
            arn: "a".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            prefix: prefix.map(str::to_string),
            suffix: suffix.map(str::to_string),
        }
    }

    #[test]
    fn overlaps() {
        let a = rule(&["s3:ObjectCreated:*"], Some("in/"), None);
        let b = rule(&["s3:ObjectCreated:Put"], Some("in/x"), None);
        let c = rule(&["s3:ObjectCreated:Put"], Some("out/"), None);
        let d = rule(&["s3:ObjectRemoved:*"], Some("in/"), None);
        assert!(events_overlap(&a.events, &b.events) && filters_overlap(&a, &b));
        assert!(!filters_overlap(&a, &c));
        assert!(!events_overlap(&a.events, &d.events));
        let e = rule(&["s3:ObjectCreated:*"], Some("in/"), Some(".csv"));
        let f = rule(&["s3:ObjectCreated:*"], Some("in/"), Some(".txt"));
        assert!(!filters_overlap(&e, &f));
    }

    #[test]
    fn parses_lambda_rules() {
        let doc = br#"<NotificationConfiguration><CloudFunctionConfiguration><Id>c1</Id><CloudFunction>arn:aws:lambda:us-east-1:1:function:f</CloudFunction><Event>s3:ObjectCreated:*</Event><Filter><S3Key><FilterRule><Name>prefix</Name><Value>input/</Value></FilterRule><FilterRule><Name>suffix</Name><Value>.csv</Value></FilterRule></S3Key></Filter></CloudFunctionConfiguration></NotificationConfiguration>"#;
        let root = parse(doc).unwrap();
        let r = rule_of(
            root.child("CloudFunctionConfiguration").unwrap(),
            "CloudFunction",
        )
        .unwrap();
        assert_eq!(r.prefix.as_deref(), Some("input/"));
        assert_eq!(r.suffix.as_deref(), Some(".csv"));
        assert_eq!(r.id, "c1");
    }
}
