//! Plain text tables: left-aligned text columns, right-aligned numbers.

use std::fmt::Write as _;

/// A table built row by row and printed with columns as wide as their
/// widest cell.
pub(crate) struct Table {
    headers: Vec<&'static str>,
    /// Which columns are numbers (right-aligned).
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers; a header starting with `#` marks a
    /// numeric column (the `#` is not shown).
    pub(crate) fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.trim_start_matches('#')).collect(),
            numeric: headers.iter().map(|h| h.starts_with('#')).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(i))
                    .map(|cell| cell.chars().count())
                    .chain([self.headers[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                if i > 0 {
                    line.push_str("  ");
                }
                if self.numeric.get(i).copied().unwrap_or(false) {
                    let _ = write!(line, "{cell:>width$}");
                } else {
                    let _ = write!(line, "{cell:<width$}");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut table = Table::new(&["NAME", "#COUNT"]);
        table.row(vec!["idle".into(), "3".into()]);
        table.row(vec!["idle in transaction".into(), "12".into()]);
        assert_eq!(
            table.render(),
            "NAME                 COUNT\nidle                     3\nidle in transaction     12\n"
        );
    }
}
