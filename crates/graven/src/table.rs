//! Tables for people: columns as wide as their contents, cut with a visible `…` only when the
//! whole table would not fit the terminal (never in a pipe, where nothing is cut), and `--wide`
//! to cut nothing. Every cell is escaped before it is measured.

use std::borrow::Cow;
use std::io::IsTerminal;

use crate::escape::for_terminal;

/// Space between two columns.
const GAP: usize = 2;
/// The narrowest a shrunk column gets (or its header, if longer).
const MIN_WIDTH: usize = 6;

/// The width to fit: the terminal's when standard output is one, else none (no cutting).
pub fn output_width(wide: bool) -> Option<usize> {
    if wide || !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size().map(|(w, _)| usize::from(w.0)).filter(|w| *w >= 20)
}

/// A column: its header, and whether it may be cut to fit (an index or a time should not be).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub shrinks: bool,
}

pub const fn col(header: &'static str, shrinks: bool) -> Column {
    Column { header, shrinks }
}

/// Rows of escaped cells, laid out together.
#[derive(Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

fn width_of(s: &str) -> usize {
    s.chars().count()
}

fn cut(s: &str, width: usize) -> Cow<'_, str> {
    if width_of(s) <= width {
        return Cow::Borrowed(s);
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    Cow::Owned(out)
}

impl Table {
    pub fn new(columns: &[Column]) -> Table {
        Table { columns: columns.to_vec(), rows: Vec::new() }
    }

    /// A row; each cell is escaped for the terminal here.
    pub fn push(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| for_terminal(c).into_owned()).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Column widths: natural, then, if that is wider than `width`, the widest shrinkable
    /// column is narrowed one character at a time until the table fits or every shrinkable
    /// column is at its minimum.
    pub fn widths(&self, width: Option<usize>) -> Vec<usize> {
        let mut w: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|s| width_of(s))
                    .max()
                    .unwrap_or(0)
                    .max(c.header.len())
            })
            .collect();
        let Some(limit) = width else { return w };
        let total = |w: &[usize]| w.iter().sum::<usize>() + GAP * w.len().saturating_sub(1);
        while total(&w) > limit {
            let narrowest = |i: usize| MIN_WIDTH.max(self.columns[i].header.len());
            let widest = (0..w.len())
                .filter(|&i| self.columns[i].shrinks && w[i] > narrowest(i))
                .max_by_key(|&i| (w[i], std::cmp::Reverse(i)));
            match widest {
                Some(i) => w[i] -= 1,
                None => break,
            }
        }
        w
    }

    /// The table as lines, header first, fitted to `width`.
    pub fn render(&self, width: Option<usize>) -> String {
        let w = self.widths(width);
        let header: Vec<String> = self.columns.iter().map(|c| c.header.to_owned()).collect();
        let mut out = line(&header, &w);
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r, &w));
            out.push('\n');
        }
        out
    }
}

/// One line of already escaped `cells` in `widths`, each cut with `…` if longer, without
/// trailing spaces.
pub fn line(cells: &[String], widths: &[usize]) -> String {
    let parts: Vec<String> = cells.iter().zip(widths).map(|(c, &w)| format!("{:<w$}", cut(c, w))).collect();
    parts.join(&" ".repeat(GAP)).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&[
            col("INDEX", false),
            col("ACTOR", true),
            col("ACTION", true),
            col("OUTCOME", false),
        ]);
        t.push(vec![
            "1".into(),
            "svc:payments-deployer".into(),
            "deployment.create".into(),
            "success".into(),
        ]);
        t.push(vec![
            "12".into(),
            "ci:build".into(),
            "artifact.publish.to-the-production-registry".into(),
            "denied".into(),
        ]);
        t
    }

    #[test]
    fn natural_widths_without_a_limit() {
        let out = sample().render(None);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "INDEX  ACTOR                  ACTION                                       OUTCOME"
        );
        assert_eq!(
            lines[2],
            "12     ci:build               artifact.publish.to-the-production-registry  denied"
        );
    }

    #[test]
    fn a_narrow_terminal_cuts_the_widest_shrinkable_column_first() {
        let t = sample();
        for limit in [80, 60, 50, 40] {
            let out = t.render(Some(limit));
            for l in out.lines() {
                assert!(width_of(l) <= limit, "{limit}: {l:?} is {} wide", width_of(l));
            }
            // Index and outcome are never cut.
            assert!(out.contains("denied") && out.contains("\n12 "), "{out}");
        }
        let out = t.render(Some(60));
        assert!(out.contains('…'), "{out}");
        // Too narrow for anything: the shrinkable columns stop at their minimum.
        let w = t.widths(Some(10));
        assert_eq!(w, vec![5, 6, 6, 7]);
    }

    #[test]
    fn cells_are_escaped_before_they_are_measured() {
        let mut t = Table::new(&[col("A", true)]);
        t.push(vec!["x\u{1b}[31my\u{202e}z".into()]);
        let out = t.render(None);
        assert!(!out.contains('\u{1b}') && !out.contains('\u{202e}'), "{out:?}");
    }
}
