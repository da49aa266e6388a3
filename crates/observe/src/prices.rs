//! The price table: what a request, a GB-second and a provisioned GB-second cost on Lambda's
//! published price list. The default (`prices.json`, embedded) is Lambda's US East list;
//! `--prices FILE` replaces it with an operator's own table of the same shape.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::ObserveError;

const DEFAULT: &str = include_str!("prices.json");

/// One step of the on-demand duration price: GB-seconds of the month up to `up_to` cost `price`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Tier {
    /// Upper bound of the tier in GB-seconds per account, architecture and month; `None` is the last.
    #[serde(rename = "UpToGBSeconds")]
    pub up_to: Option<f64>,
    pub price: f64,
}

/// Prices of one architecture.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ArchPrices {
    #[serde(rename = "GBSecondTiers")]
    pub tiers: Vec<Tier>,
    /// Configured provisioned concurrency, per GB-second it is enabled.
    #[serde(rename = "ProvisionedConcurrencyGBSecond")]
    pub provisioned_concurrency: f64,
    /// Duration of invocations served by provisioned environments, per GB-second.
    #[serde(rename = "ProvisionedDurationGBSecond")]
    pub provisioned_duration: f64,
}

/// The whole table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PriceTable {
    /// Where the numbers come from (shown in reports).
    #[serde(rename = "Source", default)]
    pub source: String,
    #[serde(rename = "Currency", default = "usd")]
    pub currency: String,
    #[serde(rename = "RequestsPerMillion")]
    pub requests_per_million: f64,
    /// Configured `/tmp` above 512 MB, per GB-second of billed duration.
    #[serde(rename = "EphemeralStorageGBSecond")]
    pub ephemeral_gb_second: f64,
    /// Keyed by Lambda's architecture names (`x86_64`, `arm64`).
    #[serde(rename = "Architectures")]
    pub architectures: BTreeMap<String, ArchPrices>,
}

fn usd() -> String {
    "USD".to_string()
}

impl Default for PriceTable {
    fn default() -> Self {
        // The embedded table is checked by a unit test.
        Self::parse(DEFAULT).unwrap_or_else(|e| panic!("embedded price table: {e}"))
    }
}

impl PriceTable {
    pub fn parse(text: &str) -> Result<Self, ObserveError> {
        let t: PriceTable =
            serde_json::from_str(text).map_err(|e| ObserveError::Prices(e.to_string()))?;
        t.check()?;
        Ok(t)
    }

    pub fn load(path: &Path) -> Result<Self, ObserveError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ObserveError::Prices(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ObserveError::Prices(format!("{}: {e}", path.display())))
    }

    fn check(&self) -> Result<(), ObserveError> {
        if !self.architectures.contains_key("x86_64") {
            return Err(ObserveError::Prices("no prices for x86_64".into()));
        }
        for (arch, p) in &self.architectures {
            let Some(last) = p.tiers.last() else {
                return Err(ObserveError::Prices(format!("{arch}: no GB-second tiers")));
            };
            if last.up_to.is_some() {
                return Err(ObserveError::Prices(format!(
                    "{arch}: the last tier must have no UpToGBSeconds"
                )));
            }
            let bounds: Vec<f64> = p.tiers.iter().filter_map(|t| t.up_to).collect();
            if bounds.windows(2).any(|w| w[0] >= w[1]) || bounds.iter().any(|b| *b <= 0.0) {
                return Err(ObserveError::Prices(format!(
                    "{arch}: tier bounds must be positive and increasing"
                )));
            }
        }
        Ok(())
    }

    /// Prices of `arch`, x86_64's for an architecture the table does not list.
    pub fn arch(&self, arch: &str) -> &ArchPrices {
        self.architectures
            .get(arch)
            .or_else(|| self.architectures.get("x86_64"))
            .unwrap_or_else(|| unreachable!("checked at load"))
    }

    /// Cost of `requests` requests.
    pub fn requests(&self, requests: u64) -> f64 {
        requests as f64 * self.requests_per_million / 1_000_000.0
    }
}

impl ArchPrices {
    /// The price when `from..to` lies within one tier.
    pub fn flat_price(&self, from: f64, to: f64) -> Option<f64> {
        let mut lower = 0.0;
        for t in &self.tiers {
            let upper = t.up_to.unwrap_or(f64::INFINITY);
            if from >= lower && to <= upper {
                return Some(t.price);
            }
            lower = upper;
        }
        None
    }

    /// Cost of the on-demand GB-seconds between `from` and `to` of one month's running total
    /// (tiers apply to an account's monthly total per architecture, as on Lambda).
    pub fn tiered(&self, from: f64, to: f64) -> f64 {
        let mut cost = 0.0;
        let mut lower = 0.0;
        for t in &self.tiers {
            let upper = t.up_to.unwrap_or(f64::INFINITY);
            let a = from.max(lower);
            let b = to.min(upper);
            if b > a {
                cost += (b - a) * t.price;
            }
            lower = upper;
        }
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_loads() {
        let t = PriceTable::default();
        assert_eq!(t.requests_per_million, 0.20);
        assert_eq!(t.arch("x86_64").tiers[0].price, 0.0000166667);
        assert_eq!(t.arch("arm64").tiers[0].up_to, Some(7.5e9));
        // Unknown architectures are priced as x86_64.
        assert_eq!(t.arch("riscv"), t.arch("x86_64"));
    }

    #[test]
    fn tiers_split_a_range_that_crosses_a_bound() {
        let t = PriceTable::default();
        let x86 = t.arch("x86_64");
        assert_eq!(x86.tiered(0.0, 10.0), 10.0 * 0.0000166667);
        let cross = x86.tiered(6e9 - 10.0, 6e9 + 10.0);
        let want = 10.0 * 0.0000166667 + 10.0 * 0.000015;
        assert!((cross - want).abs() < 1e-12, "{cross} vs {want}");
        let top = x86.tiered(2e10, 2e10 + 1.0);
        assert!((top - 0.0000133334).abs() < 1e-15);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(PriceTable::parse("{}").is_err());
        let no_last = r#"{"RequestsPerMillion":0.2,"EphemeralStorageGBSecond":0,
            "Architectures":{"x86_64":{"GBSecondTiers":[{"UpToGBSeconds":5,"Price":1}],
            "ProvisionedConcurrencyGBSecond":0,"ProvisionedDurationGBSecond":0}}}"#;
        assert!(PriceTable::parse(no_last).is_err());
    }
}
