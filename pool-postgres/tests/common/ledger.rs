//! [`Ledger`]: what a workload knows about each transaction it ran, and
//! the check of a table against it.
//!
//! Each transaction inserts one unique id. Its fate, as the client saw it:
//! - *acknowledged*: `COMMIT` answered with success; the id must be in the
//!   table exactly once;
//! - *not committed*: it failed or was abandoned before `commit` was
//!   called, so no `COMMIT` was ever sent; the id must not be there;
//! - *indeterminate*: `commit` was called and did not report success (an
//!   error, a timeout, a cancelled future): the `COMMIT` may or may not
//!   have reached the server, so the id may be there (once) or not. These
//!   are counted, never asserted either way.

use std::collections::HashMap;

/// The ids of a workload's transactions, by what the client saw.
#[derive(Debug, Default)]
pub struct Ledger {
    pub acknowledged: Vec<i64>,
    pub not_committed: Vec<i64>,
    pub indeterminate: Vec<i64>,
}

/// What the table held, measured against a [`Ledger`].
#[derive(Debug, Default)]
pub struct Audit {
    /// Acknowledged ids not in the table.
    pub lost: Vec<i64>,
    /// Ids in the table more than once, with their count.
    pub duplicated: Vec<(i64, i64)>,
    /// Ids of transactions never committed that are in the table.
    pub phantom: Vec<i64>,
    /// Ids in the table that the ledger does not know.
    pub unknown: Vec<i64>,
    /// Indeterminate ids that turned out committed / not committed.
    pub indeterminate_present: usize,
    pub indeterminate_absent: usize,
}

impl Ledger {
    pub fn absorb(&mut self, other: Self) {
        self.acknowledged.extend(other.acknowledged);
        self.not_committed.extend(other.not_committed);
        self.indeterminate.extend(other.indeterminate);
    }

    /// Reads `SELECT id FROM table` and compares it with the ledger.
    pub async fn audit(&self, client: &tokio_postgres::Client, table: &str) -> Audit {
        let rows = client
            .query(&format!("SELECT id, count(*) FROM {table} GROUP BY id"), &[])
            .await
            .expect("read the written ids");
        let mut present: HashMap<i64, i64> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        let mut audit = Audit::default();
        for &id in &self.acknowledged {
            match present.remove(&id) {
                None => audit.lost.push(id),
                Some(1) => {}
                Some(n) => audit.duplicated.push((id, n)),
            }
        }
        for &id in &self.not_committed {
            if present.remove(&id).is_some() {
                audit.phantom.push(id);
            }
        }
        for &id in &self.indeterminate {
            match present.remove(&id) {
                None => audit.indeterminate_absent += 1,
                Some(1) => audit.indeterminate_present += 1,
                Some(n) => audit.duplicated.push((id, n)),
            }
        }
        audit.unknown = present.into_keys().collect();
        audit
    }
}

impl Audit {
    /// How the table breaks the ledger, with the first few ids of each
    /// breach; empty if it does not.
    pub fn problems(&self, acknowledged: usize) -> Vec<String> {
        let first = |ids: &[i64]| ids.iter().take(10).copied().collect::<Vec<_>>();
        let mut problems = Vec::new();
        if !self.lost.is_empty() {
            problems.push(format!(
                "{} of {acknowledged} acknowledged commits lost: {:?}",
                self.lost.len(),
                first(&self.lost)
            ));
        }
        if !self.duplicated.is_empty() {
            let some = &self.duplicated[..self.duplicated.len().min(10)];
            problems
                .push(format!("{} ids written more than once (id, times): {some:?}", self.duplicated.len()));
        }
        if !self.phantom.is_empty() {
            problems.push(format!(
                "{} ids of transactions never committed are in the table: {:?}",
                self.phantom.len(),
                first(&self.phantom)
            ));
        }
        if !self.unknown.is_empty() {
            problems.push(format!(
                "{} ids no transaction wrote: {:?}",
                self.unknown.len(),
                first(&self.unknown)
            ));
        }
        problems
    }

    /// Panics if the table breaks the ledger anywhere.
    pub fn assert_consistent(&self, acknowledged: usize) {
        let problems = self.problems(acknowledged);
        assert!(problems.is_empty(), "the table does not match what the clients saw: {problems:#?}");
    }
}
