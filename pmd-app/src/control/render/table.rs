//! Aligned text tables: the one layout `vfpctl` uses for lists.
//!
//! Columns are separated by two spaces and sized to their widest cell;
//! a column whose cells are all numbers is right-aligned so magnitudes line
//! up. The last column is never padded, so lines carry no trailing blanks.

use std::fmt;

pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.as_ref().to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row; missing cells print as `-`, extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), "-".to_string());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// `1,234`, `-5`, `0.64`, `1.25M`, `41%`: what counts as a number here.
fn numeric(cell: &str) -> bool {
    let body = cell.trim_end_matches(['K', 'M', 'G', 'T', '%']).trim_start_matches('-');
    !body.is_empty() && body.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',')
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = self.headers.len();
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        let right: Vec<bool> = (0..cols)
            .map(|i| {
                !self.rows.is_empty()
                    && self.rows.iter().all(|r| r[i] == "-" || numeric(&r[i]))
                    && self.rows.iter().any(|r| numeric(&r[i]))
            })
            .collect();
        let mut line = |cells: &[String]| -> fmt::Result {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i > 0 {
                    out.push_str("  ");
                }
                if right[i] {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if i + 1 < cols {
                        out.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            writeln!(f, "{}", out.trim_end())
        };
        line(&self.headers)?;
        for row in &self.rows {
            line(row)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns() {
        let mut t = Table::new(&["NAME", "PPS", "STATE"]);
        t.row(vec!["wan".into(), "1.25M".into(), "up".into()]);
        t.row(vec!["longer".into(), "12".into()]);
        assert_eq!(
            t.to_string(),
            "NAME      PPS  STATE\nwan     1.25M  up\nlonger     12  -\n"
        );
    }
}
