//! report.html: the whole report of one run in one self-contained file.
//!
//! Inline CSS, inline SVG plots and a few lines of inline JavaScript
//! (sortable tables, opening every section before printing); nothing is
//! fetched: no CDN, no web font, no image file, so the file can be mailed,
//! attached to a ticket or opened offline, and printed to PDF. Every figure
//! carries its definition as a tooltip (`title`), from
//! [`crate::definitions`], and the definitions are listed at the end for
//! the printed page.
//!
//! Sections: verdict and headline; overlap figures; per-node and per-rank
//! tables; per-bucket table; timeline (slowest and median rank, selectable);
//! ranks plot; telemetry; warnings; definitions. Tables follow the same row
//! limits as the terminal report ([`crate::text::MAX_TABLE_ROWS`]).

use std::fmt::Write as _;

use mfubench_core::stats;

use crate::acceptance::Status;
use crate::analysis::{Report, TelemetryRow};
use crate::definitions::{self, DEFINITIONS};
use crate::fmt as f;
use crate::fmt::xml_escape as esc;
use crate::plot::{self, SvgTarget};
use crate::table::{self, Cell, Column, Kind, Table};
use crate::text;

const CSS: &str = r#"
:root{--ok:#1b7f3b;--bad:#c62828;--other:#b26a00;--line:#ddd;--muted:#666}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1260px;padding:16px 24px;color:#111;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}
h2{font-size:1.2em;margin:0;display:inline}
details{border-top:1px solid var(--line);padding:.6em 0}
summary{cursor:pointer}
nav{font-size:.9em;margin:.5em 0}
nav a{margin-right:.9em;color:#1a56a8;text-decoration:none}
.facts{color:#333;margin:.3em 0 .6em;padding-left:1.2em}
.verdict{display:inline-block;font-size:1.25em;font-weight:bold;padding:.25em .8em;border-radius:6px;color:#fff;margin:.3em 0}
.v-pass{background:var(--ok)}.v-fail{background:var(--bad)}.v-other{background:var(--other)}
.st{font-weight:bold;padding:0 .4em;border-radius:3px;color:#fff;background:var(--other)}
.st-pass{background:var(--ok)}.st-fail{background:var(--bad)}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top;white-space:nowrap}
td.text{white-space:normal;min-width:16em}
th{background:#f3f3f3;white-space:normal;vertical-align:bottom}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.num .ci{display:block;font-size:.85em;color:var(--muted)}
td.sentence{white-space:normal;text-align:left;min-width:22em}
td.label{white-space:normal;min-width:14em}
td.part{padding-left:2em}
[title]{text-decoration:underline dotted #999;text-underline-offset:3px}
td.num[title],th[title]{text-decoration:none}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-dir=asc]::after{content:" ▲"}
table.sortable th[data-dir=desc]::after{content:" ▼"}
tr.flagged td{background:#fdecea}
.flag{color:var(--bad);font-weight:bold}
.note{color:var(--muted);font-size:.9em}
.plot{overflow-x:auto}
.plot svg{max-width:100%;height:auto}
.tabs>input{position:absolute;opacity:0}
.tabs>label{display:inline-block;padding:.25em .8em;border:1px solid var(--line);border-bottom:none;border-radius:5px 5px 0 0;cursor:pointer;margin-right:.3em;background:#f3f3f3}
.tabs>input:checked+label{background:#fff;font-weight:bold}
.tab{display:none;border:1px solid var(--line);padding:4px}
#tl0:checked~#tab0,#tl1:checked~#tab1{display:block}
dl.defs dt{font-weight:bold;margin-top:.4em}
dl.defs dd{margin-left:1.2em}
@media print{
 body{max-width:none;padding:0;font-size:10pt}
 nav,.tabs>label{display:none}
 .tab{display:block;border:none;break-inside:avoid}
 details{break-inside:auto}
 .plot{overflow:visible}
 .plot svg{width:100%}
 tr{break-inside:avoid}
}
"#;

/// Sorting by a column (numbers by their `data-v`), and every section open
/// before printing.
const JS: &str = r#"
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){
  th.addEventListener('click',function(){
   var asc=th.dataset.dir!=='asc';
   t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});
   th.dataset.dir=asc?'asc':'desc';
   var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
   var key=function(r){var c=r.cells[i];if(!c)return '';var v=c.getAttribute('data-v');
    if(v!==null){var x=parseFloat(v);return isNaN(x)?Infinity:x}return c.textContent};
   rows.sort(function(a,c){var x=key(a),y=key(c);
    var d=(typeof x==='number'&&typeof y==='number')?x-y:String(x).localeCompare(String(y),undefined,{numeric:true});
    return asc?d:-d});
   rows.forEach(function(r){b.appendChild(r)});
  });
 });
});
window.addEventListener('beforeprint',function(){document.querySelectorAll('details').forEach(function(d){d.open=true})});
"#;

/// A table cell holding a figure: right-aligned, its raw value for sorting
/// and its definition as the tooltip.
fn num(text: &str, raw: Option<f64>, def: &str) -> String {
    let v = raw
        .filter(|x| x.is_finite())
        .map(|x| format!(" data-v=\"{x}\""))
        .unwrap_or_else(|| " data-v=\"\"".to_string());
    let t = definitions::text(def);
    let title = if t.is_empty() {
        String::new()
    } else {
        format!(" title=\"{}\"", esc(t))
    };
    format!(
        "<td class=\"num\"{v}{title}>{}</td>",
        value_over_interval(text)
    )
}

/// A figure as `value [lo, hi]` shows its interval on a line of its own
/// under the value (a table of ten such columns fits a 1280-pixel window);
/// any other text is unchanged.
fn value_over_interval(text: &str) -> String {
    match text.split_once(" [") {
        Some((value, rest)) if rest.ends_with(']') && !rest.contains(" [") => {
            format!("{}<span class=\"ci\"> [{}</span>", esc(value), esc(rest))
        }
        _ => esc(text),
    }
}

fn td(text: &str) -> String {
    format!("<td>{}</td>", esc(text))
}

/// A cell of running text (flags, details) that may wrap.
fn td_text(text: &str) -> String {
    format!("<td class=\"text\">{}</td>", esc(text))
}

/// A header cell with the definition of its column as the tooltip.
fn th(label: &str, def: Option<&str>) -> String {
    match def.map(definitions::text).filter(|t| !t.is_empty()) {
        Some(t) => format!("<th title=\"{}\">{}</th>", esc(t), esc(label)),
        None => format!("<th>{}</th>", esc(label)),
    }
}

/// The serde name of an acceptance status (PASS, FAIL, …): rendered as it
/// is spelled in summary.json, so that new statuses need no change here.
fn status_name(s: Status) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}").to_uppercase())
}

struct Page {
    out: String,
}

impl Page {
    fn open_section(&mut self, id: &str, title: &str) {
        let _ = writeln!(
            self.out,
            "<details open id=\"{id}\"><summary><h2>{}</h2></summary>",
            esc(title)
        );
    }
    fn close_section(&mut self) {
        self.out.push_str("</details>\n");
    }
    fn note(&mut self, text: &str) {
        let _ = writeln!(self.out, "<p class=\"note\">{}</p>", esc(text));
    }
    /// A table; `sortable` adds click-to-sort headers.
    fn table(&mut self, sortable: bool, header: &[String], rows: &[(bool, Vec<String>)]) {
        let _ = writeln!(
            self.out,
            "<table{}><thead><tr>{}</tr></thead><tbody>",
            if sortable { " class=\"sortable\"" } else { "" },
            header.concat()
        );
        for (flagged, cells) in rows {
            let _ = writeln!(
                self.out,
                "<tr{}>{}</tr>",
                if *flagged { " class=\"flagged\"" } else { "" },
                cells.concat()
            );
        }
        self.out.push_str("</tbody></table>\n");
    }

    /// A declared table ([`crate::table`]) with the rows given: headers
    /// and numbers carry their definition as the tooltip, flagged rows are
    /// shaded.
    fn declared<R>(&mut self, r: &Report, sortable: bool, t: &Table<R>, rows: &[&R]) {
        let header: Vec<String> = t.printed().map(|c| th(c.header, c.definition)).collect();
        let rows: Vec<(bool, Vec<String>)> = rows
            .iter()
            .map(|row| {
                let cells = t.printed().map(|c| cell(c, (c.value)(r, row))).collect();
                ((t.flagged)(row), cells)
            })
            .collect();
        self.table(sortable, &header, &rows);
    }
}

/// The HTML cell of a declared column.
fn cell<R>(c: &Column<R>, v: Cell) -> String {
    match c.kind {
        Kind::Label | Kind::Hidden => td(&v.text),
        Kind::Id => num(&v.text, v.raw, ""),
        Kind::Number => num(&v.text, v.raw, c.definition.unwrap_or("")),
        Kind::Note => td_text(&v.text),
    }
}

/// Sections of report.html, in order: (id, title). The golden test checks
/// them; a section without data says so rather than disappearing, except
/// the warnings.
pub const SECTIONS: &[(&str, &str)] = &[
    ("verdict", "Verdict"),
    ("headline", "Headline"),
    ("overlap", "Overlap and communication"),
    ("nodes", "Per node"),
    ("ranks", "Per rank"),
    ("buckets", "Per bucket all-reduce"),
    ("timeline", "Timeline"),
    ("ranks-plot", "Ranks plot"),
    ("telemetry", "Telemetry"),
    ("warnings", "Warnings"),
    ("definitions", "Definitions"),
];

fn title_of(id: &str) -> &'static str {
    SECTIONS
        .iter()
        .find(|s| s.0 == id)
        .map(|s| s.1)
        .unwrap_or("")
}

/// Renders report.html.
pub fn render(r: &Report) -> String {
    let mut p = Page {
        out: String::with_capacity(256 * 1024),
    };
    let title = format!("mfubench report: run {}", r.run.run_id);
    let _ = write!(
        p.out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    header(&mut p, r);
    let _ = write!(p.out, "<nav>");
    for (id, t) in SECTIONS {
        if *id == "warnings" && r.warnings.is_empty() {
            continue;
        }
        let _ = write!(p.out, "<a href=\"#{id}\">{}</a>", esc(t));
    }
    p.out.push_str("</nav>\n");
    verdict(&mut p, r);
    headline(&mut p, r);
    overlap(&mut p, r);
    nodes(&mut p, r);
    ranks(&mut p, r);
    buckets(&mut p, r);
    timeline(&mut p, r);
    ranks_plot(&mut p, r);
    telemetry(&mut p, r);
    if !r.warnings.is_empty() {
        p.open_section("warnings", title_of("warnings"));
        p.out.push_str("<ul>");
        for w in &r.warnings {
            let _ = write!(p.out, "<li>{}</li>", esc(w));
        }
        p.out.push_str("</ul>\n");
        p.close_section();
    }
    p.open_section("definitions", title_of("definitions"));
    p.out.push_str("<dl class=\"defs\">\n");
    for d in DEFINITIONS {
        let _ = writeln!(
            p.out,
            "<dt id=\"def-{}\">{}</dt><dd>{}</dd>",
            d.key,
            esc(d.name),
            esc(d.text)
        );
    }
    p.out.push_str("</dl>\n");
    p.close_section();
    let _ = write!(
        p.out,
        "<p class=\"note\">mfubench {} (schema {}); made from {}</p>\n<script>{JS}</script>\n</body></html>\n",
        esc(&r.run.tool_version),
        r.run.schema_version,
        esc(&r.run.source)
    );
    p.out
}

fn header(p: &mut Page, r: &Report) {
    let run = &r.run;
    let (class, label) = verdict_badge(r);
    let _ = writeln!(
        p.out,
        "<div class=\"verdict {class}\" id=\"verdict-badge\">{}</div>",
        esc(&label)
    );
    if run.simulated {
        let _ = writeln!(
            p.out,
            "<div class=\"verdict v-other\" id=\"simulated-banner\">{}: the devices are simulated (--sim-gpu); no figure here describes real hardware</div>",
            esc(mfubench_core::simgpu::BANNER)
        );
    }
    let facts = [
        format!(
            "model {}, {} layer{}, {} tokens per rank per step, {} GEMMs / {} gradients",
            run.model,
            run.layers,
            if run.layers == 1 { "" } else { "s" },
            f::count(run.tokens as f64),
            run.dtype,
            run.grad_dtype
        ),
        format!(
            "{} backend, {} rank{} on {} host{}: {}",
            run.backend,
            run.world_size,
            if run.world_size == 1 { "" } else { "s" },
            run.hosts,
            if run.hosts == 1 { "" } else { "s" },
            run.devices.join(", ")
        ),
        format!(
            "{} → {}; {} schedule{}",
            run.started_at,
            run.finished_at,
            r.schedule,
            if r.schedule == mfubench_core::config::Schedule::Interleaved {
                " (the modes' steps alternate, so figures comparing modes are paired per iteration)"
            } else {
                " (each mode's steps back to back)"
            }
        ),
    ];
    p.out.push_str("<ul class=\"facts\">");
    for fact in facts {
        let _ = write!(p.out, "<li>{}</li>", esc(&fact));
    }
    let _ = write!(
        p.out,
        "<li><span title=\"{}\">peak {} TFLOP/s per device</span> ({}); <span title=\"{}\">model FLOPs per rank per step {}</span> (6N {}, 6N + attention {})</li>",
        esc(definitions::text("peak")),
        f::tflops(r.peak_tflops),
        esc(text::peak_source_text(r)),
        esc(definitions::text("flops")),
        f::sci(r.flops_per_step.model),
        f::sci(r.flops_per_step.six_n),
        f::sci(r.flops_per_step.six_n_attention)
    );
    p.out.push_str("</ul>\n");
}

/// The badge at the top: the verdict's status with the count of every
/// rule status that is not PASS, the worst first (`FAIL: 1 of 5 rules,
/// INCONCLUSIVE: 1 of 5 rules`); the verdict's own word leads when no rule
/// carries it (a partial run whose measured rules passed is INCOMPLETE).
fn verdict_badge(r: &Report) -> (&'static str, String) {
    let v = &r.verdict;
    let overall = status_name(v.status);
    let n = v.rules.len();
    let class = match v.status {
        Status::Pass => "v-pass",
        Status::Fail => "v-fail",
        _ => "v-other",
    };
    let mut counts: Vec<(String, usize)> = Vec::new();
    for rule in v.rules.iter().filter(|x| x.status != Status::Pass) {
        let name = status_name(rule.status);
        match counts.iter_mut().find(|c| c.0 == name) {
            Some(c) => c.1 += 1,
            None => counts.push((name, 1)),
        }
    }
    // The worst first: FAIL, then the others by name.
    counts.sort_by(|a, b| (a.0 != "FAIL", &a.0).cmp(&(b.0 != "FAIL", &b.0)));
    let parts: Vec<String> = counts
        .iter()
        .map(|(name, c)| format!("{name}: {c} of {n} rules"))
        .collect();
    let label = if parts.is_empty() {
        format!("{overall}: {n} of {n} rules passed")
    } else if counts.iter().any(|c| c.0 == overall) {
        parts.join(", ")
    } else {
        format!("{overall} ({})", parts.join(", "))
    };
    if r.run.simulated {
        // Never a plain green PASS for a simulation.
        return (
            "v-other",
            format!("{label} — SIMULATED GPU, not a hardware verdict"),
        );
    }
    (class, label)
}

fn verdict(p: &mut Page, r: &Report) {
    p.open_section("verdict", title_of("verdict"));
    let rows: Vec<(bool, Vec<String>)> = r
        .verdict
        .rules
        .iter()
        .map(|rule| {
            let name = status_name(rule.status);
            (
                rule.status != Status::Pass,
                vec![
                    format!(
                        "<td><span class=\"st st-{}\">{}</span></td>",
                        esc(&name.to_lowercase()),
                        esc(&name)
                    ),
                    td(&rule.rule),
                    td_text(&rule.detail),
                ],
            )
        })
        .collect();
    p.table(
        false,
        &[th("status", None), th("rule", None), th("measured", None)],
        &rows,
    );
    if !r.stragglers.is_empty() {
        p.out.push_str("<p>Stragglers:</p><ul>");
        for s in r.stragglers.iter().take(text::MAX_TABLE_ROWS) {
            let _ = write!(
                p.out,
                "<li title=\"{}\">{}</li>",
                esc(definitions::text("straggler")),
                esc(&s.reason)
            );
        }
        if r.stragglers.len() > text::MAX_TABLE_ROWS {
            let _ = write!(
                p.out,
                "<li>… and {} more (see summary.json)</li>",
                r.stragglers.len() - text::MAX_TABLE_ROWS
            );
        }
        p.out.push_str("</ul>\n");
    }
    p.close_section();
}

fn headline(p: &mut Page, r: &Report) {
    p.open_section("headline", title_of("headline"));
    p.note("cluster step = slowest rank per iteration; median over iterations, with its 95 % interval [lo, hi] when the run has one");
    let t = table::headline(r);
    if t.rows.is_empty() {
        p.note("no mode has a step time");
    } else {
        p.declared(r, false, &t, &t.shown());
    }
    p.close_section();
}

fn overlap(p: &mut Page, r: &Report) {
    p.open_section("overlap", title_of("overlap"));
    let figures = text::overlap_figures(r);
    let shown: Vec<mfubench_core::result::Flag> =
        figures.iter().flat_map(|fig| fig.flags.clone()).collect();
    let mut rows: Vec<(bool, Vec<String>)> = Vec::new();
    for fig in figures {
        let def = definitions::text(fig.definition);
        let flagged = !fig.flags.is_empty();
        rows.push((
            flagged,
            vec![
                // "  of which …" rows are parts of the row above: indented.
                format!(
                    "<td class=\"label{}\" title=\"{}\">{}</td>",
                    if fig.label.starts_with("  ") {
                        " part"
                    } else {
                        ""
                    },
                    esc(def),
                    esc(fig.label.trim_start())
                ),
                // A sentence (two figures with intervals, notes): it wraps.
                format!(
                    "<td class=\"num sentence\" data-v=\"{}\" title=\"{}\">{}</td>",
                    fig.raw
                        .filter(|x| x.is_finite())
                        .map(|x| x.to_string())
                        .unwrap_or_default(),
                    esc(def),
                    esc(&fig.value)
                ),
            ],
        ));
        // The flags' messages right under their figure, across the table.
        if flagged {
            let msgs: Vec<String> = fig
                .flags
                .iter()
                .map(|fl| {
                    format!(
                        "<div class=\"flag\">⚑ {}: {}</div>",
                        esc(&fl.name),
                        esc(&fl.message)
                    )
                })
                .collect();
            rows.push((
                true,
                vec![format!(
                    "<td colspan=\"2\" class=\"text\">{}</td>",
                    msgs.concat()
                )],
            ));
        }
    }
    p.table(
        false,
        &[th("figure", None), th("value [95 % CI]", Some("ci95"))],
        &rows,
    );
    if let Some(note) = text::interval_note(r) {
        p.note(&note);
    }
    if let Some(note) = text::warmup_note(r) {
        p.note(&note);
    }
    // Flags on no row of the table (e.g. on the intervals as a whole).
    let unattached: Vec<&mfubench_core::result::Flag> =
        r.flags.iter().filter(|fl| !shown.contains(fl)).collect();
    for fl in unattached {
        let _ = writeln!(
            p.out,
            "<p class=\"flag\">⚑ {} ({}): {}</p>",
            esc(&fl.name),
            esc(&fl.figure),
            esc(&fl.message)
        );
    }
    p.close_section();
}

fn cut_note(p: &mut Page, shown: usize, total: usize, what: &str, whereto: &str) {
    if shown < total {
        p.note(&format!(
            "{total} {what}: showing the {shown} flagged or slowest; every one is in {whereto}"
        ));
    }
}

fn nodes(p: &mut Page, r: &Report) {
    let mode = r.straggler_mode.map(|m| m.name()).unwrap_or("-");
    p.open_section("nodes", title_of("nodes"));
    p.note(&format!(
        "{mode} mode; click a column to sort; flagged rows are shaded"
    ));
    let t = table::nodes(r);
    let shown = t.shown();
    cut_note(p, shown.len(), t.rows.len(), "hosts", "summary.json");
    p.declared(r, true, &t, &shown);
    p.close_section();
}

fn ranks(p: &mut Page, r: &Report) {
    let mode = r.straggler_mode.map(|m| m.name()).unwrap_or("-");
    p.open_section("ranks", title_of("ranks"));
    p.note(&format!(
        "{mode} mode; click a column to sort; flagged rows are shaded"
    ));
    let t = table::ranks(r);
    let shown = t.shown();
    cut_note(p, shown.len(), t.rows.len(), "ranks", "summary.csv");
    p.declared(r, true, &t, &shown);
    p.close_section();
}

fn buckets(p: &mut Page, r: &Report) {
    p.open_section("buckets", title_of("buckets"));
    if r.buckets.is_empty() {
        p.note("none: neither the comm nor the overlapped mode ran");
        p.close_section();
        return;
    }
    p.note("median over nodes of the median over each node's ranks of each rank's median all-reduce time");
    let t = table::buckets(r);
    p.declared(r, true, &t, &t.shown());
    p.close_section();
}

fn timeline(p: &mut Page, r: &Report) {
    p.open_section("timeline", title_of("timeline"));
    let svgs: Vec<(String, String)> = r
        .timelines
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let svg = plot::timeline_svg(r, i, SvgTarget::Inline)?;
            Some((format!("{} rank: {} ({})", t.role, t.rank, t.host), svg))
        })
        .collect();
    if svgs.is_empty() {
        p.note("no op timeline was recorded");
        p.close_section();
        return;
    }
    p.note("one recorded step per mode (the iteration with the rank's median step); hover a bar for its op, duration and bytes. \
         Red shading: communication no GEMM hides. A gap between a bucket's ready mark (▾) and the start of its all-reduce: \
         the comm stream was still busy with earlier buckets; all-reduces longer in the overlapped step than in the serialized one: contention.");
    if !r.plan_collective_ops.is_empty() {
        p.note("the collectives of each group and kind (tp all-reduce, dp_shard all-gather, dp_shard reduce-scatter, …) have a lane of their own: they run on different communicators and overlap in time.");
    }
    p.out.push_str("<div class=\"tabs\">");
    for (i, (label, _)) in svgs.iter().enumerate() {
        let _ = write!(
            p.out,
            "<input type=\"radio\" name=\"timeline-rank\" id=\"tl{i}\"{}><label for=\"tl{i}\">{}</label>",
            if i == 0 { " checked" } else { "" },
            esc(label)
        );
    }
    for (i, (_, svg)) in svgs.iter().enumerate() {
        let _ = write!(p.out, "<div class=\"tab plot\" id=\"tab{i}\">{svg}</div>");
    }
    p.out.push_str("</div>\n");
    p.close_section();
}

fn ranks_plot(p: &mut Page, r: &Report) {
    p.open_section("ranks-plot", title_of("ranks-plot"));
    match plot::ranks_svg(r, SvgTarget::Inline) {
        Some(svg) => {
            let _ = writeln!(p.out, "<div class=\"plot\">{svg}</div>");
        }
        None => p.note("no mode was run by every rank"),
    }
    p.close_section();
}

fn telemetry(p: &mut Page, r: &Report) {
    p.open_section("telemetry", title_of("telemetry"));
    if r.telemetry.is_empty() {
        p.note(&format!(
            "none recorded: the {} backend takes no device samples (GPU runs record SM clock, temperature, power and throttle reasons at the start and end of every mode)",
            r.run.backend
        ));
        p.close_section();
        return;
    }
    let opt_u = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "n/a".into());
    if r.ranks.len() <= text::MAX_TABLE_ROWS {
        let header = [
            th("rank", None),
            th("host", None),
            th("device", None),
            th("mode", None),
            th("at", None),
            th("SM clock MHz", Some("telemetry")),
            th("temperature °C", Some("telemetry")),
            th("power W", Some("telemetry")),
            th("throttle reasons", Some("telemetry")),
        ];
        let rows: Vec<(bool, Vec<String>)> = r
            .telemetry
            .iter()
            .map(|t| {
                let s = &t.sample;
                (
                    !s.throttle_reasons.is_empty(),
                    vec![
                        num(&t.rank.to_string(), Some(t.rank as f64), ""),
                        td(&t.host),
                        td(&t.device),
                        td(s.mode.name()),
                        td(&s.at),
                        num(
                            &opt_u(s.sm_clock_mhz),
                            s.sm_clock_mhz.map(f64::from),
                            "telemetry",
                        ),
                        num(
                            &opt_u(s.temperature_c),
                            s.temperature_c.map(f64::from),
                            "telemetry",
                        ),
                        num(
                            &s.power_w.map(|w| format!("{w:.0}")).unwrap_or("n/a".into()),
                            s.power_w,
                            "telemetry",
                        ),
                        td(&s.throttle_reasons.join(", ")),
                    ],
                )
            })
            .collect();
        p.table(true, &header, &rows);
    } else {
        telemetry_aggregate(p, &r.telemetry);
    }
    p.close_section();
}

/// Many ranks: min / median / max over ranks per mode and sample point,
/// and the samples with a throttle reason (the first of them).
fn telemetry_aggregate(p: &mut Page, rows: &[TelemetryRow]) {
    p.note("min / median / max over ranks");
    let mut keys: Vec<(mfubench_core::config::Mode, String)> = Vec::new();
    for t in rows {
        let k = (t.sample.mode, t.sample.at.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mmm = |v: Vec<f64>, digits: usize| match (
        v.iter().copied().reduce(f64::min),
        stats::median(&v),
        v.iter().copied().reduce(f64::max),
    ) {
        (Some(a), Some(m), Some(b)) => format!("{a:.digits$} / {m:.digits$} / {b:.digits$}"),
        _ => "n/a".to_string(),
    };
    let header = [
        th("mode", None),
        th("at", None),
        th("SM clock MHz", Some("telemetry")),
        th("temperature °C", Some("telemetry")),
        th("power W", Some("telemetry")),
        th("samples throttled", Some("telemetry")),
    ];
    let table: Vec<(bool, Vec<String>)> = keys
        .iter()
        .map(|(mode, at)| {
            let sel: Vec<&TelemetryRow> = rows
                .iter()
                .filter(|t| t.sample.mode == *mode && &t.sample.at == at)
                .collect();
            let throttled = sel
                .iter()
                .filter(|t| !t.sample.throttle_reasons.is_empty())
                .count();
            (
                throttled > 0,
                vec![
                    td(mode.name()),
                    td(at),
                    td(&mmm(
                        sel.iter()
                            .filter_map(|t| t.sample.sm_clock_mhz.map(f64::from))
                            .collect(),
                        0,
                    )),
                    td(&mmm(
                        sel.iter()
                            .filter_map(|t| t.sample.temperature_c.map(f64::from))
                            .collect(),
                        0,
                    )),
                    td(&mmm(
                        sel.iter().filter_map(|t| t.sample.power_w).collect(),
                        0,
                    )),
                    num(&throttled.to_string(), Some(throttled as f64), ""),
                ],
            )
        })
        .collect();
    p.table(false, &header, &table);
    let throttled: Vec<&TelemetryRow> = rows
        .iter()
        .filter(|t| !t.sample.throttle_reasons.is_empty())
        .take(text::MAX_TABLE_ROWS)
        .collect();
    if !throttled.is_empty() {
        p.out.push_str("<p>Throttled samples:</p><ul>");
        for t in throttled {
            let _ = write!(
                p.out,
                "<li>rank {} ({}, {}) {} {}: {}</li>",
                t.rank,
                esc(&t.host),
                esc(&t.device),
                t.sample.mode,
                esc(&t.sample.at),
                esc(&t.sample.throttle_reasons.join(", "))
            );
        }
        p.out.push_str("</ul>\n");
    }
}
