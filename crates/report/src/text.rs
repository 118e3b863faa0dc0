//! The human-readable report, as terminal tables or Markdown. One function
//! builds both so that the two cannot drift apart; only the table style and
//! the section headers differ.

use std::fmt::Write as _;

use mfubench_core::config::Mode;
use mfubench_core::metrics::Collective;
use mfubench_core::parallel::Group;
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use crate::acceptance::Status;
use crate::analysis::Report;
use crate::fmt as f;
use crate::table::{self, Kind, Table};

pub use crate::table::MAX_TABLE_ROWS;

/// Terminal tables or Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Plain-text tables for a terminal or a log.
    Terminal,
    /// GitHub-flavoured Markdown.
    Markdown,
}

struct Doc {
    flavor: Flavor,
    out: String,
}

impl Doc {
    fn heading(&mut self, title: &str) {
        match self.flavor {
            Flavor::Terminal => {
                let _ = writeln!(self.out, "\n{title}");
            }
            Flavor::Markdown => {
                let _ = writeln!(self.out, "\n## {title}\n");
            }
        }
    }

    fn line(&mut self, text: &str) {
        match self.flavor {
            Flavor::Terminal => {
                let _ = writeln!(self.out, "{text}");
            }
            // Two trailing spaces would be a hard break; a list keeps lines
            // apart without depending on whitespace.
            Flavor::Markdown => {
                let _ = writeln!(self.out, "- {}", md_escape(text));
            }
        }
    }

    /// A table; the columns in `right` (numbers) are right-aligned.
    fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>, right: &[usize]) {
        let mut b = Builder::default();
        b.push_record(header.iter().map(|h| h.to_string()));
        for r in rows {
            match self.flavor {
                Flavor::Terminal => b.push_record(r),
                Flavor::Markdown => b.push_record(r.into_iter().map(|c| md_escape(&c))),
            }
        }
        let mut t = b.build();
        match self.flavor {
            Flavor::Terminal => {
                t.with(Style::psql());
            }
            Flavor::Markdown => {
                t.with(Style::markdown());
            }
        }
        for &i in right {
            t.modify(Columns::one(i), Alignment::right());
        }
        let _ = writeln!(self.out, "{t}");
    }

    /// A declared table ([`crate::table`]) with the rows given: numbers
    /// right-aligned, hidden columns left out.
    fn declared<R>(&mut self, r: &Report, t: &Table<R>, rows: &[&R]) {
        let header: Vec<&str> = t.printed().map(|c| c.header).collect();
        let right: Vec<usize> = t
            .printed()
            .enumerate()
            .filter(|(_, c)| c.kind == Kind::Number)
            .map(|(i, _)| i)
            .collect();
        let rows = rows
            .iter()
            .map(|row| t.cells(r, row).into_iter().map(|c| c.text).collect())
            .collect();
        self.table(&header, rows, &right);
    }
}

/// Markdown cells and lines: a `|` would split a table cell, and HTML in a
/// run.json string (a host or model name) must stay text.
fn md_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace('`', "\\`")
}

/// Text for a terminal or a file: every control character but the line
/// break (an ANSI escape from a hostile run.json, a carriage return that
/// would overwrite a line) becomes `?`.
pub fn strip_controls(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
        .collect()
}

/// Renders the report.
pub fn render(r: &Report, flavor: Flavor) -> String {
    let mut d = Doc {
        flavor,
        out: String::new(),
    };
    let title = format!("mfubench report: run {}", r.run.run_id);
    match flavor {
        Flavor::Terminal => {
            let _ = writeln!(d.out, "{title}");
        }
        Flavor::Markdown => {
            let _ = writeln!(d.out, "# {}\n", md_escape(&title));
        }
    }
    if r.run.simulated {
        d.line(&format!(
            "{}: the devices are simulated (--sim-gpu); no figure here describes real hardware",
            mfubench_core::simgpu::BANNER
        ));
    }
    let run = &r.run;
    d.line(&format!(
        "model {}, {} layer{}, {} tokens per rank per step, {} GEMMs / {} gradients",
        run.model,
        run.layers,
        if run.layers == 1 { "" } else { "s" },
        f::count(run.tokens as f64),
        run.dtype,
        run.grad_dtype
    ));
    d.line(&format!(
        "{} backend, {} rank{} on {} host{}: {}",
        run.backend,
        run.world_size,
        if run.world_size == 1 { "" } else { "s" },
        run.hosts,
        if run.hosts == 1 { "" } else { "s" },
        run.devices.join(", ")
    ));
    d.line(&format!(
        "peak {} TFLOP/s per device ({}); model FLOPs per rank per step {} (6N {}, 6N + attention {})",
        f::tflops(r.peak_tflops),
        peak_source_text(r),
        f::sci(r.flops_per_step.model),
        f::sci(r.flops_per_step.six_n),
        f::sci(r.flops_per_step.six_n_attention)
    ));
    d.line(&format!(
        "mfubench {} (schema {}), {} → {}, from {}",
        run.tool_version, run.schema_version, run.started_at, run.finished_at, run.source
    ));

    headline(&mut d, r);
    overlap(&mut d, r);
    stragglers(&mut d, r);
    nodes(&mut d, r);
    ranks(&mut d, r);
    buckets(&mut d, r);
    verdict(&mut d, r);
    if !r.warnings.is_empty() {
        d.heading("Warnings");
        for w in &r.warnings {
            d.line(&format!("warning: {w}"));
        }
    }
    if flavor == Flavor::Markdown {
        plots(&mut d, r);
    }
    strip_controls(&d.out)
}

/// Markdown only: the plots, embedded as images from the files written
/// beside summary.md, and a link to report.html.
fn plots(d: &mut Doc, r: &Report) {
    use crate::plot::{ranks_svg, timeline_svg, SvgTarget};
    d.heading("Plots");
    if timeline_svg(r, 0, SvgTarget::File).is_some() {
        let _ = writeln!(
            d.out,
            "![Timeline: serialized and overlapped steps of the slowest rank](timeline.svg)\n"
        );
    }
    if ranks_svg(r, SvgTarget::File).is_some() {
        let _ = writeln!(
            d.out,
            "![Per-rank rates, grouped and coloured by node](ranks.svg)\n"
        );
    }
    let _ = writeln!(
        d.out,
        "Everything in one page, with the median rank's timeline and sortable tables: [report.html](report.html)"
    );
}

pub(crate) fn peak_source_text(r: &Report) -> &'static str {
    use mfubench_core::result::PeakSource;
    match r.peak_source {
        PeakSource::Spec => "datasheet",
        PeakSource::Config => "from the config",
        PeakSource::Calibrated => "calibrated: best GEMM rate of the plan's shapes at start",
    }
}

fn headline(d: &mut Doc, r: &Report) {
    d.heading("Headline (cluster step = slowest rank per iteration; median over iterations)");
    let t = table::headline(r);
    d.declared(r, &t, &t.shown());
}

pub(crate) fn needs(r: &Report, modes: &[Mode]) -> String {
    let missing: Vec<&str> = modes
        .iter()
        .filter(|m| !r.run.modes.contains(m))
        .map(|m| m.name())
        .collect();
    if missing.is_empty() {
        "n/a".to_string()
    } else {
        format!("n/a (needs the {} mode)", missing.join(" and "))
    }
}

/// One row of the overlap and communication table: what people read, and
/// the key of its definition ([`crate::definitions`]). The terminal,
/// Markdown and HTML reports all print these rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The figure's name with its formula.
    pub label: &'static str,
    /// The formatted value with its 95 % interval (`value [lo, hi]`) and
    /// the names of the flags on it, or why there is no value.
    pub value: String,
    /// The measured value in base units, for sorting and machine use.
    pub raw: Option<f64>,
    /// Key into [`crate::definitions::DEFINITIONS`].
    pub definition: &'static str,
    /// The summary's flags on this figure.
    pub flags: Vec<mfubench_core::result::Flag>,
}

/// Whether a summary flag on `flag_figure` concerns the row of the summary
/// field `name`; the exposed-communication row shows both of its fields.
fn flag_on(flag_figure: &str, name: &str) -> bool {
    flag_figure == name
        || (name.starts_with("exposed_comm") && flag_figure.starts_with("exposed_comm"))
}

/// Per mode with collectives, the most and the least waiting rank's
/// median waiting for peers per step.
fn wait_for_peers(w: &std::collections::BTreeMap<Mode, Vec<f64>>) -> String {
    if w.is_empty() {
        return "n/a (the ranks' clocks were not aligned: written by an older mfubench)".into();
    }
    let pick = |v: &[f64], most: bool| {
        v.iter()
            .copied()
            .enumerate()
            .reduce(|a, b| if (b.1 > a.1) == most { b } else { a })
    };
    w.iter()
        .filter_map(|(mode, v)| {
            let (hi, lo) = (pick(v, true)?, pick(v, false)?);
            Some(format!(
                "{mode} {} (rank {}) / {} (rank {})",
                f::time(hi.1),
                hi.0,
                f::time(lo.1),
                lo.0
            ))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The overlap and communication figures of a report, in table order.
pub fn overlap_figures(r: &Report) -> Vec<Figure> {
    use mfubench_core::result::ExposedBreakdown;
    type Ci = ExposedBreakdown<Option<[f64; 2]>>;
    use Mode::*;
    let o = &r.overlap;
    let a = &r.allreduce;
    let or = |v: Option<String>, modes: &[Mode]| v.unwrap_or_else(|| needs(r, modes));
    let c = &r.ci95;
    // A figure with its interval, the rounds and coverage behind the
    // interval when they differ from the run's, and the names of the flags
    // on it.
    let fig = |v: Option<f64>, ci: Option<[f64; 2]>, name: &str, fmt: fn(f64) -> String| {
        v.map(|v| {
            let flags: Vec<&str> = r
                .flags
                .iter()
                .filter(|fl| flag_on(&fl.figure, name))
                .map(|fl| fl.name.as_str())
                .collect();
            let mut out = f::with_ci(v, ci, fmt);
            if let (Some(_), Some(cov), Some(n)) =
                (ci, r.ci95_coverage.get(name), r.ci95_n.get(name))
            {
                if (cov - c.coverage).abs() > 1e-9 {
                    out.push_str(&format!(
                        " ({n} of {} rounds, {:.1} % coverage)",
                        c.paired_iterations,
                        cov * 100.0
                    ));
                }
            }
            if !flags.is_empty() {
                out.push_str(&format!("  ⚑ {}", flags.join(", ")));
            }
            out
        })
    };
    // `field`: the summary field whose flags the row carries.
    let row = |label, value, raw, definition, field: &str| Figure {
        label,
        value,
        raw,
        definition,
        flags: r
            .flags
            .iter()
            .filter(|fl| flag_on(&fl.figure, field))
            .cloned()
            .collect(),
    };
    let parts = o.exposed_breakdown.zip(c.exposed_breakdown);
    let part = |label, name, v: fn(&ExposedBreakdown) -> f64, ci: fn(&Ci) -> Option<[f64; 2]>| {
        parts.map(|(b, bc)| {
            let key = format!("exposed_breakdown.{name}");
            row(
                label,
                fig(Some(v(&b)), ci(&bc), &key, f::time).unwrap_or_default(),
                Some(v(&b)),
                "exposed_breakdown",
                &key,
            )
        })
    };
    let breakdown = [
        part(
            "  of which GEMM slowdown (GEMM time overlapped − compute)",
            "gemm_slowdown_s",
            |b| b.gemm_slowdown_s,
            |c| c.gemm_slowdown_s,
        ),
        part(
            "  of which exposed collective (a collective runs, no GEMM)",
            "exposed_collective_s",
            |b| b.exposed_collective_s,
            |c| c.exposed_collective_s,
        ),
        if r.wait_for_peers_s.is_empty() {
            // Records without aligned clocks: their exposed collective
            // time holds the waiting; a 0 here would claim it measured.
            parts.map(|_| {
                row(
                    "  of which waiting for peers (at a collective, nothing runs)",
                    "n/a (the ranks' clocks were not aligned: part of the exposed collective)"
                        .into(),
                    None,
                    "exposed_breakdown",
                    "exposed_breakdown.waiting_for_peers_s",
                )
            })
        } else {
            part(
                "  of which waiting for peers (at a collective, nothing runs)",
                "waiting_for_peers_s",
                |b| b.waiting_for_peers_s,
                |c| c.waiting_for_peers_s,
            )
        },
        part(
            "  of which sync skew (barrier exit skew, launch gaps)",
            "sync_skew_s",
            |b| b.sync_skew_s,
            |c| c.sync_skew_s,
        ),
    ];
    let mut rows = vec![
        row(
            "exposed communication (median over rounds of T_o − T_c)",
            or(
                fig(
                    o.exposed_comm_s,
                    c.exposed_comm_s,
                    "exposed_comm_s",
                    f::time,
                )
                .zip(fig(
                    o.exposed_comm_fraction,
                    c.exposed_comm_fraction,
                    "exposed_comm_fraction",
                    f::pct,
                ))
                .map(|(s, fr)| format!("{s}; {fr} of the overlapped step")),
                &[Compute, Overlapped],
            ),
            o.exposed_comm_s,
            "exposed_comm",
            "exposed_comm_s",
        ),
        row(
            "serialized overhead (median over rounds of (T_s − T_c)/T_s)",
            or(
                fig(
                    o.serialized_overhead,
                    c.serialized_overhead,
                    "serialized_overhead",
                    f::pct,
                ),
                &[Compute, Serialized],
            ),
            o.serialized_overhead,
            "serialized_overhead",
            "serialized_overhead",
        ),
        row(
            "hidden fraction of communication (median over rounds of 1 − exposed collective/T_a)",
            match (o.hidden_fraction, o.step_hidden_fraction) {
                (None, Some(_)) => "n/a (the records have no per-step exposed collective time: written by an older mfubench)".to_string(),
                _ => or(
                    fig(
                        o.hidden_fraction,
                        c.hidden_fraction,
                        "hidden_fraction",
                        f::pct,
                    ),
                    &[Compute, Comm, Overlapped],
                ),
            },
            o.hidden_fraction,
            "hidden_fraction",
            "hidden_fraction",
        ),
        row(
            "step-based hidden fraction (median over rounds of (T_c + T_a − T_o)/T_a)",
            or(
                fig(
                    o.step_hidden_fraction,
                    c.step_hidden_fraction,
                    "step_hidden_fraction",
                    f::pct,
                ),
                &[Compute, Comm, Overlapped],
            ),
            o.step_hidden_fraction,
            "step_hidden_fraction",
            "step_hidden_fraction",
        ),
        row(
            "overlap speedup (median over rounds of T_s/T_o)",
            or(
                fig(
                    o.overlap_speedup,
                    c.overlap_speedup,
                    "overlap_speedup",
                    f::ratio,
                ),
                &[Serialized, Overlapped],
            ),
            o.overlap_speedup,
            "overlap_speedup",
            "overlap_speedup",
        ),
        row(
            "efficiency vs achievable overlap (ratio of medians over rounds: (T_s − T_o) / (T_s − max(T_c + tail, T_a)))",
            match (o.overlap_efficiency, o.last_bucket_tail_s) {
                (Some(_), Some(tail)) => format!(
                    "{} (last bucket's exposed tail {})",
                    fig(
                        o.overlap_efficiency,
                        c.overlap_efficiency,
                        "overlap_efficiency",
                        f::pct
                    )
                    .unwrap_or_default(),
                    f::time(tail)
                ),
                (None, Some(_)) => {
                    "n/a (nothing to hide: the achievable step is the serialized one)".into()
                }
                _ => needs(r, &[Compute, Comm, Serialized, Overlapped]),
            },
            o.overlap_efficiency,
            "overlap_efficiency",
            "overlap_efficiency",
        ),
        row(
            "GEMM slowdown under overlap",
            or(
                fig(
                    o.contention.gemm,
                    c.contention_gemm,
                    "contention_gemm",
                    f::ratio,
                ),
                &[Compute, Overlapped],
            ),
            o.contention.gemm,
            "contention_gemm",
            "contention_gemm",
        ),
        row(
            "all-reduce slowdown under overlap",
            or(
                fig(
                    o.contention.allreduce,
                    c.contention_allreduce,
                    "contention_allreduce",
                    f::ratio,
                ),
                &[Comm, Overlapped],
            ),
            o.contention.allreduce,
            "contention_allreduce",
            "contention_allreduce",
        ),
        row(
            "waiting for peers (median per step; most / least waiting rank)",
            wait_for_peers(&r.wait_for_peers_s),
            r.wait_for_peers_s
                .get(&Overlapped)
                .and_then(|w| w.iter().copied().reduce(f64::max)),
            "wait_for_peers",
            "wait_for_peers_s",
        ),
        row(
            "all-reduced per step",
            if a.buckets == 0 && !r.collectives.is_empty() {
                "no gradient buckets (sharded data parallelism: see the rows per collective kind)"
                    .to_string()
            } else {
                format!(
                    "{} in {} bucket{}",
                    f::bytes(a.bytes),
                    a.buckets,
                    if a.buckets == 1 { "" } else { "s" }
                )
            },
            Some(a.bytes as f64),
            "algbw",
            "allreduce_bytes",
        ),
        row(
            "all-reduce algbw / busbw (comm mode)",
            or(
                a.algbw_gbps.map(|x| {
                    // The gradient all-reduces' own group: the replicas
                    // with tensor parallelism, else the world.
                    let n = a.group_size.unwrap_or(r.run.world_size);
                    let group = if n == r.run.world_size {
                        String::new()
                    } else {
                        ", the data-parallel group of the gradient all-reduces".to_string()
                    };
                    match a.busbw_gbps {
                        Some(y) if n > 1 => {
                            format!("{} / {} (n = {n}{group})", f::gbps(x), f::gbps(y))
                        }
                        _ => format!(
                            "{} / n/a (n = {n}{group}: nothing crosses a link)",
                            f::gbps(x)
                        ),
                    }
                }),
                &[Comm],
            ),
            a.busbw_gbps,
            "busbw",
            "busbw_gbps",
        ),
        row(
            "wrong all-reduce elements (#wrong)",
            if r.run.check {
                r.wrong.to_string()
            } else {
                format!("{} (not checked: run.check = false)", r.wrong)
            },
            Some(r.wrong as f64),
            "wrong",
            "wrong",
        ),
    ];
    // The breakdown sits under the exposed-communication row it splits.
    rows.splice(1..1, breakdown.into_iter().flatten());
    rows.into_iter().chain(collective_rows(r)).collect()
}

/// The row label of a kind of collective on a group.
fn collective_label(kind: Collective, group: Group) -> &'static str {
    use Collective::*;
    use Group::*;
    match (kind, group) {
        (AllReduce, Tp) => "all-reduce on tp: exposed; hidden",
        (AllReduce, DpShard) => "all-reduce on dp_shard: exposed; hidden",
        (AllReduce, DpReplicate) => "all-reduce on dp_replicate: exposed; hidden",
        (AllReduce, World) => "all-reduce on world: exposed; hidden",
        (AllGather, Tp) => "all-gather on tp: exposed; hidden",
        (AllGather, DpShard) => "all-gather on dp_shard: exposed; hidden",
        (AllGather, DpReplicate) => "all-gather on dp_replicate: exposed; hidden",
        (AllGather, World) => "all-gather on world: exposed; hidden",
        (ReduceScatter, Tp) => "reduce-scatter on tp: exposed; hidden",
        (ReduceScatter, DpShard) => "reduce-scatter on dp_shard: exposed; hidden",
        (ReduceScatter, DpReplicate) => "reduce-scatter on dp_replicate: exposed; hidden",
        (ReduceScatter, World) => "reduce-scatter on world: exposed; hidden",
        (AllReduce, Expert) => "all-reduce on ep: exposed; hidden",
        (AllReduce, ExpertReplicate) => "all-reduce on dp_expert: exposed; hidden",
        (AllGather, Expert | ExpertReplicate) => "all-gather on an expert group: exposed; hidden",
        (ReduceScatter, Expert | ExpertReplicate) => {
            "reduce-scatter on an expert group: exposed; hidden"
        }
        (AllToAll, Expert) => "all-to-all on ep: exposed; hidden",
        (AllToAll, _) => "all-to-all: exposed; hidden",
        (SendRecv, _) => "send/recv: exposed; hidden",
    }
}

/// One row per kind of collective that was measured: exposure and hidden
/// fraction with their intervals, then size and bandwidths.
fn collective_rows(r: &Report) -> Vec<Figure> {
    r.collectives
        .iter()
        .filter(|c| c.time_s.is_some() || c.exposed_s.is_some())
        .map(|c| {
            let exposed = c
                .exposed_s
                .map(|v| f::with_ci(v, c.exposed_s_ci95, f::time))
                .unwrap_or_else(|| needs(r, &[Mode::Compute, Mode::Overlapped]));
            let hidden = c
                .hidden_fraction
                .map(|v| f::with_ci(v, c.hidden_fraction_ci95, f::pct))
                .unwrap_or_else(|| needs(r, &[Mode::Comm, Mode::Overlapped]));
            let bw = match (c.algbw_gbps, c.busbw_gbps) {
                (Some(a), Some(b)) => format!(
                    ", algbw / busbw {} / {}",
                    f::gbps(a),
                    f::with_ci(b, c.busbw_gbps_ci95, f::gbps)
                ),
                _ => String::new(),
            };
            let serialized = c
                .serialized_exposed_s
                .map(|v| {
                    format!(
                        "; serialized exposed {}",
                        f::with_ci(v, c.serialized_exposed_s_ci95, f::time)
                    )
                })
                .unwrap_or_default();
            Figure {
                label: collective_label(c.kind, c.group),
                value: format!(
                    "{exposed}; {hidden}{serialized} (n = {}, {} × per step = {}{bw})",
                    c.group_size,
                    c.count,
                    f::bytes(c.bytes)
                ),
                raw: c.exposed_s,
                definition: "collective_kind",
                flags: Vec::new(),
            }
        })
        .collect()
}

/// The line under the overlap table that says how the intervals were made.
pub(crate) fn interval_note(r: &Report) -> Option<String> {
    let c = &r.ci95;
    (c.paired_iterations > 0).then(|| {
        format!(
            "Intervals: distribution-free 95 % CI of the median (order statistics); figures comparing modes are paired per iteration over {} iteration(s), {} schedule, coverage {}.",
            c.paired_iterations,
            r.schedule,
            f::pct(c.coverage)
        )
    })
}

/// The line that says how warmup ended (None: no warmup recorded).
pub(crate) fn warmup_note(r: &Report) -> Option<String> {
    let w = r.warmup?;
    let change = w.last_change.map(|c| {
        format!(
            "{} {}",
            f::pct(c.abs()),
            if c < 0.0 { "faster" } else { "slower" }
        )
    });
    let why = match w.stable {
        None => "a fixed count".to_string(),
        Some(true) => format!(
            "stable: no rank's last round more than {} faster than the one before{}",
            f::pct(w.tolerance),
            change
                .map(|c| format!(" (the rank that sped up most: {c})"))
                .unwrap_or_default()
        ),
        Some(false) => format!(
            "NOT STABLE: ended at the cap of {} with a rank still getting faster{}",
            w.max_rounds,
            change
                .map(|c| format!(" ({c} than the round before)"))
                .unwrap_or_default()
        ),
    };
    Some(format!(
        "Warmup: {} round(s), {why}{}.",
        w.rounds,
        if w.max_rounds > w.min_rounds {
            format!(
                "; rule: at least {}, at most {}",
                w.min_rounds, w.max_rounds
            )
        } else {
            String::new()
        }
    ))
}

fn overlap(d: &mut Doc, r: &Report) {
    d.heading("Overlap and communication");
    let rows = overlap_figures(r)
        .into_iter()
        .map(|fig| vec![fig.label.to_string(), fig.value])
        .collect();
    d.table(&["figure", "value [95 % CI]"], rows, &[]);
    if let Some(note) = interval_note(r) {
        d.line(&note);
    }
    if let Some(note) = warmup_note(r) {
        d.line(&note);
    }
    for fl in &r.flags {
        d.line(&format!("⚑ {} ({}): {}", fl.name, fl.figure, fl.message));
    }
}

fn stragglers(d: &mut Doc, r: &Report) {
    let tol = f::pct(r.acceptance.straggler_tolerance);
    match r.straggler_mode {
        None => {
            d.heading("Stragglers");
            d.line("none computed: no mode was run by every rank");
        }
        Some(m) => {
            d.heading(&format!(
                "Stragglers ({m} step more than {tol} slower than the median rank)"
            ));
            if r.stragglers.is_empty() {
                d.line("none");
            }
            for s in r.stragglers.iter().take(MAX_TABLE_ROWS) {
                d.line(&s.reason);
            }
            if r.stragglers.len() > MAX_TABLE_ROWS {
                d.line(&format!(
                    "… and {} more (see summary.json)",
                    r.stragglers.len() - MAX_TABLE_ROWS
                ));
            }
            if !r.slow_hosts.is_empty() {
                let shown: Vec<&str> = r
                    .slow_hosts
                    .iter()
                    .take(MAX_TABLE_ROWS)
                    .map(String::as_str)
                    .collect();
                d.line(&format!(
                    "hosts with a straggler: {}{}",
                    shown.join(", "),
                    if r.slow_hosts.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
}

fn nodes(d: &mut Doc, r: &Report) {
    let mode = r.straggler_mode.map(Mode::name).unwrap_or("-");
    d.heading(&format!("Per node ({mode} mode)"));
    let t = table::nodes(r);
    let shown = t.shown();
    if shown.len() < t.rows.len() {
        d.line(&format!(
            "{} hosts: showing the {} flagged or slowest; every host is in summary.json",
            t.rows.len(),
            shown.len()
        ));
    }
    d.declared(r, &t, &shown);
}

fn ranks(d: &mut Doc, r: &Report) {
    let mode = r.straggler_mode.map(Mode::name).unwrap_or("-");
    d.heading(&format!("Per rank ({mode} mode)"));
    let t = table::ranks(r);
    let shown = t.shown();
    if shown.len() < t.rows.len() {
        d.line(&format!(
            "{} ranks: showing the {} flagged or slowest; every rank and mode is in summary.csv",
            t.rows.len(),
            shown.len()
        ));
    }
    d.declared(r, &t, &shown);
}

fn buckets(d: &mut Doc, r: &Report) {
    d.heading("Per bucket all-reduce (median over nodes of the median over each node's ranks of each rank's median)");
    if r.buckets.is_empty() {
        d.line("none: neither the comm nor the overlapped mode ran");
        return;
    }
    let t = table::buckets(r);
    d.declared(r, &t, &t.shown());
}

fn verdict(d: &mut Doc, r: &Report) {
    d.heading("Acceptance");
    for rule in &r.verdict.rules {
        d.line(&format!(
            "{:<12} {:<26} {}",
            rule.status.word(),
            rule.rule,
            rule.detail
        ));
    }
    let v = &r.verdict;
    let n = v.rules.len();
    // A simulated run's verdict judges the tool, not hardware: say so on the
    // verdict line itself, so no PASS of a simulation reads as a real one.
    let sim = if r.run.simulated {
        format!(
            " — {} (--sim-gpu): not a hardware verdict",
            mfubench_core::simgpu::BANNER
        )
    } else {
        String::new()
    };
    let line = match v.status {
        Status::Pass => format!("verdict: PASS ({n} of {n} rules)"),
        Status::Fail => format!(
            "verdict: FAIL ({} of {n} rules failed)",
            v.count(Status::Fail)
        ),
        Status::Inconclusive => format!(
            "verdict: INCONCLUSIVE ({} of {n} rules could not be decided within noise; --allow-inconclusive accepts them)",
            v.count(Status::Inconclusive)
        ),
        Status::Skipped => format!(
            "verdict: SKIPPED ({} of {n} rules could not be judged on this run; not a PASS)",
            v.count(Status::Skipped)
        ),
        Status::Incomplete => format!(
            "verdict: INCOMPLETE (the run stopped before every mode ran; {} of {n} rules passed, \
             {} failed, {} not judged)",
            v.count(Status::Pass),
            v.count(Status::Fail),
            n - v.count(Status::Pass) - v.count(Status::Fail)
        ),
    };
    d.line(&format!("{line}{sim}"));
}
