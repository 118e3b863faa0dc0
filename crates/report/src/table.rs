//! The report's tables, declared once.
//!
//! A table is a list of [`Column`]s — header, definition key (into
//! [`crate::definitions`]), [`Kind`], how to read a [`Cell`] from a row, and
//! the Prometheus series it feeds, if any — over rows of one of the
//! [`Report`]'s vectors. The terminal and Markdown tables ([`crate::text`]),
//! report.html ([`crate::html`]), summary.csv and the Prometheus file
//! ([`crate::export`]) all render these declarations, so a column added or
//! renamed here changes every format alike and no format can drift from
//! the others.

use crate::analysis::{BucketRow, ModeHeadline, NodeRow, RankModeRow, RankRow, Report};
use crate::fmt as f;

/// Per-rank and per-node tables list every row up to this many; past it only
/// the flagged rows and the slowest few, the rest being in summary.csv.
pub const MAX_TABLE_ROWS: usize = 64;
/// Slowest rows shown when a table is cut.
const SLOWEST_SHOWN: usize = 10;

/// One cell: the text people read and, for numbers, the value in the
/// column's display unit (HTML sorts by it; Prometheus scales it to base
/// units).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The formatted text.
    pub text: String,
    /// The measured value, when the cell holds one.
    pub raw: Option<f64>,
}

impl Cell {
    /// A text cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell {
            text: s.into(),
            raw: None,
        }
    }

    /// A number: its text and its value.
    pub fn num(text: impl Into<String>, raw: Option<f64>) -> Cell {
        Cell {
            text: text.into(),
            raw,
        }
    }

    /// An optional figure: `n/a` when missing.
    fn opt(v: Option<f64>, fmt: impl Fn(f64) -> String) -> Cell {
        Cell::num(f::opt(v, fmt), v)
    }

    /// An exact count.
    fn count(n: u64) -> Cell {
        Cell::num(n.to_string(), Some(n as f64))
    }
}

/// How a column is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A name: left-aligned, a plain HTML cell.
    Label,
    /// A number naming the row (a rank): left-aligned in the terminal like
    /// a name, sorted as a number in HTML.
    Id,
    /// A measured number: right-aligned, sorted by value, its definition as
    /// the HTML tooltip.
    Number,
    /// Running text that may wrap (flags).
    Note,
    /// Not printed: only machine outputs (Prometheus) read it.
    Hidden,
}

/// The Prometheus series a column feeds: `mfubench_<name>` with the row's
/// labels (and `label`, when several columns share one family), value
/// `raw × scale` (base units). Its `# HELP` is the column's definition,
/// after `scope`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// Family name after `mfubench_`.
    pub name: &'static str,
    /// An extra label telling apart the columns of one family.
    pub label: Option<(&'static str, &'static str)>,
    /// Factor from the cell's unit to the base unit (TFLOP/s → FLOP/s).
    pub scale: f64,
    /// What a sample is and its unit, shown before the definition.
    pub scope: &'static str,
}

/// One column of a table over rows of type `R`.
pub struct Column<R> {
    /// The printed header (the CSV column name for summary.csv).
    pub header: &'static str,
    /// Key into [`crate::definitions::DEFINITIONS`]: the HTML tooltip and
    /// the Prometheus help.
    pub definition: Option<&'static str>,
    /// Layout.
    pub kind: Kind,
    /// The cell of a row.
    pub value: fn(&Report, &R) -> Cell,
    /// The Prometheus series of the column, if any.
    pub metric: Option<Metric>,
}

/// A table: its columns and every row (the printed tables may show fewer,
/// see [`Table::shown`]).
pub struct Table<'a, R> {
    /// The columns, in order.
    pub columns: Vec<Column<R>>,
    /// Every row.
    pub rows: Vec<&'a R>,
    /// Rows shaded in HTML (and always kept when a table is cut).
    pub flagged: fn(&R) -> bool,
    /// For tables cut past [`crate::text::MAX_TABLE_ROWS`]: how slow a row
    /// is (the slowest are kept); `None`: never cut.
    pub slowness: Option<fn(&R) -> f64>,
    /// The Prometheus labels that identify a row.
    pub labels: fn(&R) -> Vec<(&'static str, String)>,
}

impl<R> Table<'_, R> {
    /// The rows a printed table shows: all of them, or past
    /// [`crate::text::MAX_TABLE_ROWS`] the flagged and the slowest.
    pub fn shown(&self) -> Vec<&R> {
        match self.slowness {
            None => self.rows.clone(),
            Some(slow) => pick(
                self.rows.len(),
                |i| (self.flagged)(self.rows[i]),
                |i| slow(self.rows[i]),
            )
            .into_iter()
            .map(|i| self.rows[i])
            .collect(),
        }
    }

    /// The printed columns (all but [`Kind::Hidden`]).
    pub fn printed(&self) -> impl Iterator<Item = &Column<R>> {
        self.columns.iter().filter(|c| c.kind != Kind::Hidden)
    }

    /// The printed cells of a row.
    pub fn cells(&self, report: &Report, row: &R) -> Vec<Cell> {
        self.printed().map(|c| (c.value)(report, row)).collect()
    }
}

fn no_labels<R>(_: &R) -> Vec<(&'static str, String)> {
    Vec::new()
}

fn never<R>(_: &R) -> bool {
    false
}

/// A column with no Prometheus series.
fn col<R>(
    header: &'static str,
    definition: Option<&'static str>,
    kind: Kind,
    value: fn(&Report, &R) -> Cell,
) -> Column<R> {
    Column {
        header,
        definition,
        kind,
        value,
        metric: None,
    }
}

/// A column that also feeds the Prometheus family `name`.
fn series<R>(
    header: &'static str,
    definition: &'static str,
    kind: Kind,
    value: fn(&Report, &R) -> Cell,
    metric: Metric,
) -> Column<R> {
    Column {
        metric: Some(metric),
        ..col(header, Some(definition), kind, value)
    }
}

fn metric(name: &'static str, scale: f64, scope: &'static str) -> Metric {
    Metric {
        name,
        label: None,
        scale,
        scope,
    }
}

fn step_stat(stat: &'static str) -> Metric {
    Metric {
        label: Some(("stat", stat)),
        ..metric(
            "step_time_seconds",
            1.0,
            "per mode; stat = median, p95 or min over iterations; seconds",
        )
    }
}

/// The headline: one row per mode (HFU only when some mode has it).
pub fn headline(r: &Report) -> Table<'_, ModeHeadline> {
    Table {
        columns: headline_columns(r.headline.iter().any(|h| h.hfu.is_some())),
        rows: r.headline.iter().collect(),
        flagged: never,
        slowness: None,
        labels: |h| vec![("mode", h.mode.name().to_string())],
    }
}

fn headline_columns(with_hfu: bool) -> Vec<Column<ModeHeadline>> {
    use Kind::*;
    let mut columns = vec![
        col("mode", None, Label, |_, h: &ModeHeadline| {
            Cell::text(h.mode.name())
        }),
        col("iters", Some("iterations"), Number, |_, h| {
            Cell::count(h.iterations as u64)
        }),
        series(
            "step median [95 % CI]",
            "step_time",
            Number,
            |r, h| {
                Cell::num(
                    f::with_ci(h.step_median_s, r.ci95.step_time_s.get(h.mode), f::time),
                    Some(h.step_median_s),
                )
            },
            step_stat("median"),
        ),
        series(
            "p95",
            "step_time",
            Number,
            |_, h| Cell::num(f::time(h.step_p95_s), Some(h.step_p95_s)),
            step_stat("p95"),
        ),
        series(
            "min",
            "step_time",
            Number,
            |_, h| Cell::num(f::time(h.step_min_s), Some(h.step_min_s)),
            step_stat("min"),
        ),
        series(
            "TFLOP/s/device",
            "tflops",
            Number,
            |_, h| Cell::opt(h.tflops_per_device, f::tflops),
            metric("flops_per_device", 1e12, "per mode; FLOP/s"),
        ),
        series(
            "MFU [95 % CI]",
            "mfu",
            Number,
            |r, h| {
                let text = h
                    .mfu
                    .map(|m| r.mfu_text(f::with_ci(m, r.ci95.mfu.get(h.mode), f::pct)))
                    .unwrap_or_else(|| "n/a".into());
                Cell::num(text, h.mfu)
            },
            metric("mfu_ratio", 1.0, "per mode; ratio 0-1"),
        ),
        series(
            "sustained MFU [95 % CI]",
            "mfu_sustained",
            Number,
            |r, h| {
                let ci = r.ci95.mfu_sustained.get(h.mode);
                Cell::num(
                    f::opt(h.mfu_sustained, |m| f::with_ci(m, ci, f::pct)),
                    h.mfu_sustained,
                )
            },
            metric("mfu_sustained_ratio", 1.0, "per mode; ratio 0-1"),
        ),
    ];
    if with_hfu {
        columns.push(series(
            "HFU",
            "hfu",
            Number,
            |_, h| Cell::opt(h.hfu, f::pct),
            metric("hfu_ratio", 1.0, "per mode; ratio 0-1"),
        ));
    }
    columns.push(series(
        "tokens/s (slice)",
        "tokens_per_second",
        Number,
        |_, h| Cell::opt(h.tokens_per_second, f::count),
        metric("tokens_per_second", 1.0, "per mode; tokens per second"),
    ));
    columns.push(col(
        "tokens/s (full model)",
        Some("full_model_tokens_per_second"),
        Number,
        |_, h| Cell::opt(h.full_model_tokens_per_second, f::count),
    ));
    columns
}

fn jitter(x: f64) -> String {
    format!("{x:.3}")
}

/// One row per host, in the straggler mode.
pub fn nodes(r: &Report) -> Table<'_, NodeRow> {
    Table {
        columns: nodes_columns(),
        rows: r.nodes.iter().collect(),
        flagged: |n| !n.flags.is_empty(),
        slowness: Some(|n| n.step_max_s.unwrap_or(f64::INFINITY)),
        labels: |n| vec![("host", n.host.clone())],
    }
}

fn nodes_columns() -> Vec<Column<NodeRow>> {
    use Kind::*;
    vec![
        col("host", None, Label, |_, n: &NodeRow| Cell::text(&n.host)),
        col("ranks", None, Number, |_, n| Cell::count(n.ranks as u64)),
        series(
            "median TFLOP/s",
            "tflops",
            Number,
            |_, n| Cell::opt(n.rate_median_tflops, f::tflops),
            metric(
                "host_flops_per_device",
                1e12,
                "median over the host's ranks, straggler mode; FLOP/s",
            ),
        ),
        col("min TFLOP/s", Some("tflops"), Number, |_, n| {
            Cell::opt(n.rate_min_tflops, f::tflops)
        }),
        series(
            "slowest step",
            "step_time",
            Number,
            |_, n| Cell::opt(n.step_max_s, f::time),
            metric(
                "host_step_time_seconds",
                1.0,
                "the slowest rank's median step on the host, straggler mode; seconds",
            ),
        ),
        col("max jitter p95/med", Some("jitter"), Number, |_, n| {
            Cell::opt(n.jitter_max, jitter)
        }),
        series(
            "stragglers",
            "straggler",
            Number,
            |_, n| Cell::count(n.stragglers as u64),
            metric("host_stragglers", 1.0, "ranks on the host"),
        ),
        series(
            "wrong",
            "wrong",
            Number,
            |_, n| Cell::count(n.wrong),
            metric("host_wrong_elements", 1.0, "on the host, all modes"),
        ),
        col("flags", None, Note, |_, n| Cell::text(n.flags.join("; "))),
    ]
}

/// One row per rank, in the straggler mode.
pub fn ranks(r: &Report) -> Table<'_, RankRow> {
    Table {
        columns: ranks_columns(),
        rows: r.ranks.iter().collect(),
        flagged: |k| !k.flags.is_empty(),
        slowness: Some(|k| k.step_median_s.unwrap_or(f64::INFINITY)),
        labels: |k| vec![("rank", k.rank.to_string()), ("host", k.host.clone())],
    }
}

fn ranks_columns() -> Vec<Column<RankRow>> {
    use Kind::*;
    vec![
        col("rank", None, Id, |_, k: &RankRow| Cell::count(k.rank)),
        col("host", None, Label, |_, k| Cell::text(&k.host)),
        col("device", None, Label, |_, k| Cell::text(&k.device)),
        series(
            "step median",
            "step_time",
            Number,
            |_, k| Cell::opt(k.step_median_s, f::time),
            metric(
                "rank_step_time_seconds",
                1.0,
                "the rank's median step, straggler mode; seconds",
            ),
        ),
        series(
            "TFLOP/s",
            "tflops",
            Number,
            |_, k| Cell::opt(k.rate_tflops, f::tflops),
            metric(
                "rank_flops",
                1e12,
                "the rank's rate at its median step, straggler mode; FLOP/s",
            ),
        ),
        col("vs median", Some("deviation"), Number, |_, k| {
            Cell::opt(k.deviation, f::delta_pct)
        }),
        col("jitter p95/med", Some("jitter"), Number, |_, k| {
            Cell::opt(k.jitter, jitter)
        }),
        series(
            "straggler",
            "straggler",
            Hidden,
            |_, k| {
                Cell::num(
                    k.straggler.to_string(),
                    Some(f64::from(u8::from(k.straggler))),
                )
            },
            metric("rank_straggler", 1.0, "1 when the rank is one, else 0"),
        ),
        series(
            "wrong",
            "wrong",
            Number,
            |_, k| Cell::count(k.wrong),
            metric("rank_wrong_elements", 1.0, "of the rank, all modes"),
        ),
        col("flags", None, Note, |_, k| Cell::text(k.flags.join("; "))),
    ]
}

/// One row per mode and gradient bucket.
pub fn buckets(r: &Report) -> Table<'_, BucketRow> {
    Table {
        columns: buckets_columns(),
        rows: r.buckets.iter().collect(),
        flagged: never,
        slowness: None,
        labels: no_labels,
    }
}

fn buckets_columns() -> Vec<Column<BucketRow>> {
    use Kind::*;
    vec![
        col("mode", None, Label, |_, b: &BucketRow| {
            Cell::text(b.mode.name())
        }),
        col("bucket", None, Number, |_, b| Cell::count(b.index as u64)),
        col("bytes", Some("bucket_bytes"), Number, |_, b| {
            Cell::num(f::bytes(b.bytes), Some(b.bytes as f64))
        }),
        col("time", Some("bucket_time"), Number, |_, b| {
            Cell::opt(b.time_s, f::time)
        }),
        col("algbw", Some("algbw"), Number, |_, b| {
            Cell::opt(b.algbw_gbps, f::gbps)
        }),
        col("busbw", Some("busbw"), Number, |_, b| {
            Cell::opt(b.busbw_gbps, f::gbps)
        }),
    ]
}

/// A row of summary.csv: a rank in a mode, and whether the rank is a
/// straggler (looked up once per report, not per cell).
pub struct CsvRow<'a> {
    /// The rank's figures in one mode.
    pub row: &'a RankModeRow,
    /// Whether the rank is a straggler.
    pub straggler: bool,
}

/// summary.csv: a row per rank and mode, in machine form (shortest
/// round-trip numbers, empty for a missing value); the headers are the CSV
/// column names.
pub fn csv_columns<'a>() -> Vec<Column<CsvRow<'a>>> {
    use Kind::*;
    fn raw(x: f64) -> Cell {
        Cell::num(f::num(x), Some(x))
    }
    vec![
        col("run_id", None, Label, |r, _| Cell::text(&r.run.run_id)),
        col("rank", None, Id, |_, c| Cell::count(c.row.rank)),
        col("host", None, Label, |_, c| Cell::text(&c.row.host)),
        col("local_rank", None, Id, |_, c| Cell::count(c.row.local_rank)),
        col("device", None, Label, |_, c| Cell::text(&c.row.device)),
        col("mode", None, Label, |_, c| Cell::text(c.row.mode.name())),
        col("iterations", Some("iterations"), Number, |_, c| {
            Cell::count(c.row.iterations as u64)
        }),
        col("step_median_s", Some("step_time"), Number, |_, c| {
            raw(c.row.step_median_s)
        }),
        col("step_p95_s", Some("step_time"), Number, |_, c| {
            raw(c.row.step_p95_s)
        }),
        col("step_min_s", Some("step_time"), Number, |_, c| {
            raw(c.row.step_min_s)
        }),
        col("step_max_s", Some("step_time"), Number, |_, c| {
            raw(c.row.step_max_s)
        }),
        col("jitter_p95_over_median", Some("jitter"), Number, |_, c| {
            raw(c.row.jitter)
        }),
        col("tflops_per_device", Some("tflops"), Number, |_, c| {
            Cell::num(f::raw(c.row.tflops), c.row.tflops)
        }),
        col("mfu_fraction", Some("mfu"), Number, |_, c| {
            Cell::num(f::raw(c.row.mfu), c.row.mfu)
        }),
        col("gemm_time_s", None, Number, |_, c| raw(c.row.gemm_time_s)),
        col("allreduce_time_s", None, Number, |_, c| {
            raw(c.row.allreduce_time_s)
        }),
        col("wrong", Some("wrong"), Number, |_, c| {
            Cell::count(c.row.wrong)
        }),
        col("straggler", Some("straggler"), Label, |_, c| {
            Cell::text(c.straggler.to_string())
        }),
    ]
}

/// Indices to show of a table sorted by "slowness": all when small, else
/// the flagged ones plus the slowest few, in original order.
fn pick(n: usize, flagged: impl Fn(usize) -> bool, slowness: impl Fn(usize) -> f64) -> Vec<usize> {
    if n <= MAX_TABLE_ROWS {
        return (0..n).collect();
    }
    let mut keep: Vec<usize> = (0..n)
        .filter(|&i| flagged(i))
        .take(MAX_TABLE_ROWS)
        .collect();
    let mut by_slow: Vec<usize> = (0..n).collect();
    by_slow.sort_by(|&a, &b| slowness(b).total_cmp(&slowness(a)));
    for i in by_slow.into_iter().take(SLOWEST_SHOWN) {
        if !keep.contains(&i) {
            keep.push(i);
        }
    }
    keep.sort_unstable();
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<R>(what: &str, cols: &[Column<R>]) {
        for c in cols {
            if let Some(key) = c.definition {
                assert!(
                    !crate::definitions::text(key).is_empty(),
                    "{what}.{}: unknown definition {key}",
                    c.header
                );
            }
            if c.metric.is_some() {
                assert!(
                    c.definition.is_some(),
                    "{what}.{}: a series needs a definition",
                    c.header
                );
            }
        }
    }

    #[test]
    fn every_definition_key_exists() {
        check("headline", &headline_columns(true));
        check("nodes", &nodes_columns());
        check("ranks", &ranks_columns());
        check("buckets", &buckets_columns());
        check("csv", &csv_columns());
    }
}
