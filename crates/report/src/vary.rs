//! The variant table of a `mfubench run --vary` run: `OUT/<run-id>/vary.json`
//! beside `variants/<k>/run.json`.
//!
//! [`read_vary`] reads vary.json for the variant list and their status, then
//! recomputes the table from the variants' run.json files as they are now
//! (with [`mfubench_core::vary::vary_record`], the function the worker used
//! to write it), so a variant's file that was re-written or completed later
//! is what the table shows. [`render`] prints one row per variant: its
//! value, MFU, exposed communication and hidden fraction with their 95 %
//! intervals, its overlapped step against the leader's (paired per round)
//! and the verdict.

use std::path::{Path, PathBuf};

use mfubench_core::result::RunRecord;
use mfubench_core::vary::{
    vary_record, VariantRow, VariantStatus, VaryRecord, WithCi, VARY_SCHEMA_VERSION,
};
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use crate::error::ReportError;
use crate::fmt;
use crate::read::read_run;

/// Largest vary.json read (it holds one short entry per variant).
const MAX_VARY_JSON_BYTES: u64 = 16 << 20;

/// The vary.json a path names: the file itself, or the one in a run
/// directory. None when there is none.
pub fn vary_file(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        let f = path.join("vary.json");
        f.is_file().then_some(f)
    } else {
        (path.file_name().is_some_and(|n| n == "vary.json") && path.is_file())
            .then(|| path.to_path_buf())
    }
}

/// Reads vary.json and recomputes its table from the variants' run.json
/// files (a variant whose run.json is missing or unreadable counts as
/// not measured, and the reason is returned beside it).
pub fn read_vary(file: &Path) -> Result<(VaryRecord, Vec<String>), ReportError> {
    let bytes = mfubench_fsio::read_capped(file, MAX_VARY_JSON_BYTES, "vary.json", "")?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ReportError::Syntax {
            path: file.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
    let found = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if found > u64::from(VARY_SCHEMA_VERSION) {
        return Err(ReportError::FutureSchema {
            path: file.to_path_buf(),
            found,
            supported: VARY_SCHEMA_VERSION,
        });
    }
    let stored: VaryRecord =
        serde_json::from_value(value).map_err(|e| ReportError::Inconsistent {
            path: file.to_path_buf(),
            message: format!("not a valid vary.json: {e}"),
        })?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    let records: Vec<Option<RunRecord>> = stored
        .variants
        .iter()
        .map(|v| match v.status {
            VariantStatus::DoesNotFit { .. } => None,
            // The folder follows from the index (never a path from the
            // file: a hostile `dir` could point anywhere).
            VariantStatus::Ran => match read_run(&dir.join(format!("variants/{}", v.index))) {
                Ok(r) => Some(r.record),
                Err(e) => {
                    problems.push(format!("variant {} ({}): {e}", v.index, v.label));
                    None
                }
            },
        })
        .collect();
    let rows: Vec<VariantRow<'_>> = stored
        .variants
        .iter()
        .zip(&records)
        .map(|(v, r)| VariantRow {
            index: v.index,
            label: v.label.clone(),
            settings: v.settings.clone(),
            status: v.status.clone(),
            record: r.as_ref(),
        })
        .collect();
    Ok((vary_record(&stored.run_id, &stored.vary, &rows), problems))
}

/// The variant table, the conclusion and the reasons of variants that did
/// not fit, as text for a terminal.
pub fn render(rec: &VaryRecord) -> String {
    let labels: Vec<String> = rec.variants.iter().map(|v| v.label.clone()).collect();
    let ci = |w: Option<WithCi>, f: &dyn Fn(f64) -> String| match w {
        Some(w) => fmt::with_ci(w.value, w.ci95, f),
        None => "n/a".to_string(),
    };
    let mut b = Builder::default();
    b.push_record(
        [
            "variant",
            "MFU (overlapped)",
            "exposed comm",
            "hidden fraction",
            "step vs leader",
            "#wrong",
            "verdict",
        ]
        .map(String::from),
    );
    for v in &rec.variants {
        b.push_record([
            v.label.clone(),
            ci(v.mfu_overlapped, &fmt::pct),
            ci(v.exposed_comm_s, &fmt::time),
            ci(v.hidden_fraction, &|x| format!("{x:.3}")),
            match (rec.leader, v.vs_leader) {
                (Some(l), _) if l == v.index => "leader".into(),
                (_, r) => ci(r, &|x| format!("×{x:.3}")),
            },
            if matches!(v.status, VariantStatus::DoesNotFit { .. }) {
                "-".into()
            } else {
                v.wrong.to_string()
            },
            v.verdict.short(&labels),
        ]);
    }
    let mut t = b.build();
    t.with(Style::psql());
    t.modify(Columns::new(1..6), Alignment::right());
    let mut out = format!(
        "Variants ({}; {} paired round(s), overlapped step per round; 95 % intervals):\n{t}\n",
        rec.vary.join(" "),
        rec.rounds
    );
    for v in &rec.variants {
        if let VariantStatus::DoesNotFit { reason } = &v.status {
            out.push_str(&format!("{} does not fit: {reason}\n", v.label));
        }
    }
    if !rec.complete {
        out.push_str("INCOMPLETE: the run stopped before every variant finished; the table shows the rounds written so far\n");
    }
    out.push_str(&format!("{}\n", rec.conclusion));
    // Labels and reasons come from the file: no escape sequence reaches a
    // terminal.
    crate::text::strip_controls(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfubench_core::vary::{parse_vary_arg, variants};

    #[test]
    fn renders_every_variant_with_its_verdict() {
        let text = "[model]\npreset = \"tiny\"\n[run]\nbackend = \"cpu\"\n";
        let v = variants(text, "q", &[parse_vary_arg("run.bucket_mb=1,16").unwrap()]).unwrap();
        let rows = vec![
            v[0].row(VariantStatus::Ran, None),
            v[1].row(
                VariantStatus::DoesNotFit {
                    reason: "needs 9 GiB".into(),
                },
                None,
            ),
        ];
        let rec = vary_record("r", &["run.bucket_mb=1,16".into()], &rows);
        let t = render(&rec);
        assert!(t.contains("run.bucket_mb=1 "), "{t}");
        assert!(t.contains("not measured"), "{t}");
        assert!(t.contains("does not fit"), "{t}");
        assert!(
            t.contains("run.bucket_mb=16 does not fit: needs 9 GiB"),
            "{t}"
        );
        assert!(t.contains("INCOMPLETE"), "{t}");
    }
}
