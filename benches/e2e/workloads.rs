//! The three workloads: their SQL, the table they use, and the equivalent
//! pgbench scripts.

use serde::{Deserialize, Serialize};

/// The table `point_read` and `short_tx` use. A distinctive name, because
/// with `DATABASE_URL` the harness drops and re-creates it in someone else's
/// database.
pub(crate) const TABLE: &str = "e2e_bench_kv";

/// One unit of work, run once per operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Workload {
    /// `SELECT 1`: the cost of the round trip and of the pool itself.
    #[default]
    Select1,
    /// `SELECT v FROM e2e_bench_kv WHERE k = $1` with a random key.
    PointRead,
    /// `BEGIN; UPDATE e2e_bench_kv SET v = v + 1 WHERE k = $1; COMMIT`.
    ShortTx,
}

impl Workload {
    /// Every workload, in table order.
    pub(crate) const ALL: [Workload; 3] = [Workload::Select1, Workload::PointRead, Workload::ShortTx];

    /// The name used on the command line and in the output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Select1 => "select1",
            Self::PointRead => "point_read",
            Self::ShortTx => "short_tx",
        }
    }

    /// Parses a name from [`Workload::name`].
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The one statement of the workload (inside the transaction for
    /// `short_tx`), as SQL text.
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::Select1 => "SELECT 1",
            Self::PointRead => "SELECT v FROM e2e_bench_kv WHERE k = $1",
            Self::ShortTx => "UPDATE e2e_bench_kv SET v = v + 1 WHERE k = $1",
        }
    }

    /// The same work as a pgbench script (`-f`), with pgbench's own random key.
    pub(crate) fn pgbench_script(self, rows: i32) -> String {
        match self {
            Self::Select1 => "SELECT 1;\n".to_owned(),
            Self::PointRead => format!("\\set k random(1, {rows})\nSELECT v FROM {TABLE} WHERE k = :k;\n"),
            Self::ShortTx => {
                format!(
                    "\\set k random(1, {rows})\nBEGIN;\nUPDATE {TABLE} SET v = v + 1 WHERE k = :k;\nCOMMIT;\n"
                )
            }
        }
    }
}

/// The SQL that (re)creates the table with `rows` rows, keys `1..=rows`
/// (then run [`VACUUM`], which cannot share a batch).
pub(crate) fn setup_sql(rows: i32) -> String {
    format!(
        "DROP TABLE IF EXISTS {TABLE};
         CREATE TABLE {TABLE} (k int4 PRIMARY KEY, v int8 NOT NULL);
         INSERT INTO {TABLE} SELECT g, g FROM generate_series(1, {rows}) AS g;"
    )
}

/// Sets the visibility map and statistics of the fresh table.
pub(crate) const VACUUM: &str = "VACUUM ANALYZE e2e_bench_kv";

/// A small, fast pseudo-random generator (SplitMix64) for the keys: one per
/// task, so drawing a key costs nothing and needs no lock.
pub(crate) struct Keys {
    state: u64,
    rows: u64,
}

impl Keys {
    /// A generator for keys `1..=rows`, seeded from `seed`.
    pub(crate) fn new(seed: u64, rows: i32) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D,
            rows: rows.max(1) as u64,
        }
    }

    /// The next key.
    pub(crate) fn next_key(&mut self) -> i32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % self.rows) as i32 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_in_range_and_spread() {
        let mut keys = Keys::new(7, 100);
        let mut seen = [false; 101];
        for _ in 0..10_000 {
            let k = keys.next_key();
            assert!((1..=100).contains(&k));
            seen[k as usize] = true;
        }
        assert!(seen[1..].iter().all(|&s| s));
    }

    #[test]
    fn names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.name()), Some(w));
        }
    }
}
