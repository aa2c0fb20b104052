//! The persisted ledger: loading it at start, and what to do with a row that cannot be read.
//!
//! A damaged counter row whose value is readable and zero is skipped (moved to the quarantine
//! table, counted in `itniotech_exporter_quarantined_rows{table="series"}`): the series comes
//! back at 0, which is what Prometheus last saw. Any other damaged row would come back at 0
//! after a non-zero value, a counter reset of a series Prometheus has scraped, so the agent
//! refuses to start and says how to recover (docs/runbook.md, "Damaged counter row").

use super::{Store, StoreError};
use crate::ledger::{Ledger, LedgerFamily, Sample, SeriesValue};
use rusqlite::params;

/// A stored series row that cannot be restored, skipped because its value is zero.
#[derive(Debug, Clone, PartialEq)]
pub struct DamagedSeries {
    pub family: String,
    pub labels: String,
    pub value: String,
    pub reason: String,
}

impl Store {
    /// Loads the persisted ledger, skipping damaged zero rows (which stay where they are).
    pub fn load_ledger(&self) -> Result<Ledger, StoreError> {
        self.read_ledger().map(|(ledger, _)| ledger)
    }

    /// Loads the persisted ledger at start: damaged zero rows are moved to the quarantine table
    /// (logged once, counted by the quarantine gauge), other damaged rows refuse the start.
    pub fn open_ledger(&mut self, now_ms: i64) -> Result<Ledger, StoreError> {
        let (ledger, damaged) = self.read_ledger()?;
        if !damaged.is_empty() {
            let tx = self.conn.transaction()?;
            for d in &damaged {
                tracing::error!(
                    family = %d.family,
                    reason = %d.reason,
                    "skipping a damaged counter row whose value is 0; moved to the quarantine \
                     table (docs/runbook.md, \"Damaged counter row\")"
                );
                tx.execute(
                    "INSERT INTO quarantine (tbl, key, payload, reason, at)
                     VALUES ('series', ?1 || ' ' || ?2, ?3, ?4, ?5)",
                    params![d.family, d.labels, d.value, d.reason, now_ms],
                )?;
                tx.execute(
                    "DELETE FROM series WHERE family = ?1 AND labels = ?2",
                    params![d.family, d.labels],
                )?;
            }
            tx.commit()?;
        }
        Ok(ledger)
    }

    fn read_ledger(&self) -> Result<(Ledger, Vec<DamagedSeries>), StoreError> {
        let mut ledger = Ledger::new();
        let mut damaged = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT family, labels, value FROM series")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (family_text, labels_text, value_text) = row?;
            let Some(family) = LedgerFamily::from_key(&family_text) else {
                // A family a newer version wrote, or one since renamed: keep it stored, skip it.
                tracing::warn!(
                    family = family_text,
                    "skipping stored series of an unknown metric family"
                );
                continue;
            };
            let value = serde_json::from_str::<SeriesValue>(&value_text).ok();
            match check(family, &labels_text, value.as_ref()) {
                Ok(labels) => ledger.restore(
                    (family, labels),
                    value.expect("check accepts only a readable value"),
                ),
                Err(reason) if value.as_ref().is_some_and(is_zero) => damaged.push(DamagedSeries {
                    family: family_text,
                    labels: labels_text,
                    value: value_text,
                    reason,
                }),
                Err(reason) => {
                    return Err(StoreError::DamagedSeries(recovery_message(
                        self.path(),
                        &family_text,
                        &labels_text,
                        &reason,
                    )))
                }
            }
        }
        Ok((ledger, damaged))
    }
}

/// The row's label values when it can be restored as it is; else what is wrong with it.
fn check(
    family: LedgerFamily,
    labels: &str,
    value: Option<&SeriesValue>,
) -> Result<Vec<String>, String> {
    let spec = family.spec();
    let labels: Vec<String> =
        serde_json::from_str(labels).map_err(|e| format!("unreadable labels: {e}"))?;
    if labels.len() != spec.labels.len() {
        return Err(format!(
            "{} label values for {} labels",
            labels.len(),
            spec.labels.len()
        ));
    }
    match (value.map(|v| &v.sample), spec.buckets) {
        (None, _) => Err("unreadable value".into()),
        (Some(Sample::Counter(v)), None) if v.is_finite() && *v >= 0.0 => Ok(labels),
        (Some(Sample::Counter(v)), None) => Err(format!("invalid counter value {v}")),
        (
            Some(Sample::Histogram {
                sum,
                count,
                buckets,
            }),
            Some(bounds),
        ) => {
            if buckets.len() != bounds.len() + 1 {
                Err(format!(
                    "{} buckets where the family has {}",
                    buckets.len(),
                    bounds.len() + 1
                ))
            } else if buckets.iter().sum::<u64>() != *count || !sum.is_finite() {
                Err("histogram buckets do not add up to its count".into())
            } else {
                Ok(labels)
            }
        }
        (Some(_), _) => Err("a counter stored as a histogram, or the reverse".into()),
    }
}

fn is_zero(v: &SeriesValue) -> bool {
    match &v.sample {
        Sample::Counter(c) => *c == 0.0,
        Sample::Histogram { count, .. } => *count == 0,
    }
}

/// What an operator runs to accept the reset of one damaged series (after a backup): the row is
/// named by its family and the hex of its labels text, so the command is safe to paste whatever
/// bytes the damaged row holds.
fn recovery_message(
    path: Option<&std::path::Path>,
    family: &str,
    labels: &str,
    reason: &str,
) -> String {
    let db = path.map_or_else(
        || "itniotech-exporter.db".into(),
        |p| p.display().to_string(),
    );
    let hex = hex::encode_upper(labels.as_bytes());
    let filter = format!("family = '{family}' AND hex(labels) = '{hex}'");
    format!(
        "damaged counter row in the store: {family} ({reason}). Skipping it would reset a counter \
         Prometheus has already scraped, so the agent does not start. To recover, stop the agent, \
         back up {db}, then either repair the row's labels and value with sqlite3, or accept the \
         reset of this one series by moving the row to the quarantine table: sqlite3 '{db}' \
         \"INSERT INTO quarantine (tbl, key, payload, reason, at) SELECT 'series', family || ' ' \
         || labels, value, 'moved by an operator: {reason_sql}', CAST(strftime('%s','now') AS \
         INTEGER) * 1000 FROM series WHERE {filter}; DELETE FROM series WHERE {filter};\" \
         (docs/runbook.md, \"Damaged counter row\")",
        reason_sql = reason.replace(['\'', '"', '\\', '$', '`'], " "),
    )
}
