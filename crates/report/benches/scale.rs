//! Scale benchmark: a generated 16,384-rank run (2,048 hosts × 8, four
//! modes with timelines), written as the worker writes a run of more than
//! 16 ranks (run.json with one record per node, the rank records in
//! `ranks/<host>.json`), read, summarised, rendered in every format and
//! plotted, as `mfubench report` does. Prints wall time per phase, the
//! bytes read, and the peak resident memory (VmHWM). Target: < 2 s and
//! < 1 GiB in release.
//! `MFUBENCH_SCALE_HOSTS=16384` runs the 131,072-rank case of issue 24
//! (targets < 10 s, < 2 GiB, report.html < 5 MB); ci/bench.sh runs both.
//!
//! `cargo bench -p mfubench-report --bench scale`
//!
//! The report phase runs in a child process: VmHWM cannot be reset, and the
//! generator's own peak must not be counted.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use mfubench_report::{analyze_with, export, fsutil, plot, read_run, Format};

const CHILD: &str = "MFUBENCH_SCALE_CHILD";

fn vm_hwm_mib() -> f64 {
    let kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    kib as f64 / 1024.0
}

/// Hosts of the generated run (8 ranks each): `MFUBENCH_SCALE_HOSTS`, else 2,048.
fn hosts() -> usize {
    std::env::var("MFUBENCH_SCALE_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048)
}

/// The targets (seconds, MiB) for this size: the 16,384-rank benchmark's,
/// or issue 24's for 100,000 ranks and more.
fn targets() -> (f64, f64) {
    if hosts() * 8 >= 100_000 {
        (10.0, 2048.0)
    } else {
        (2.0, 1024.0)
    }
}

fn report_phase(path: &Path) {
    let out = path.parent().unwrap_or(Path::new("."));
    let t0 = Instant::now();
    let loaded = read_run(path).expect("read");
    let t_read = t0.elapsed();
    let t1 = Instant::now();
    let report = analyze_with(
        &loaded.record,
        loaded.rank_records(),
        &path.display().to_string(),
        &loaded.record.config.acceptance,
    );
    let t_sum = t1.elapsed();
    let t2 = Instant::now();
    for f in Format::ALL {
        let e = f.exporter();
        let text = e.render(&report).expect("render");
        if let Some(name) = e.file_name() {
            fsutil::write_atomic(&out.join(name), text.as_bytes()).expect("write");
        }
    }
    let _ = export::junit(&report);
    let _ = export::prometheus(&report);
    let t_tab = t2.elapsed();
    let t3 = Instant::now();
    let tl = plot::timeline_svg(&report, 0, plot::SvgTarget::File);
    let rk = plot::ranks_svg(&report, plot::SvgTarget::File);
    fsutil::write_atomic(&out.join("timeline.svg"), tl.unwrap_or_default().as_bytes())
        .expect("write");
    fsutil::write_atomic(&out.join("ranks.svg"), rk.unwrap_or_default().as_bytes()).expect("write");
    let t_plot = t3.elapsed();
    let html_bytes = std::fs::metadata(out.join("report.html"))
        .map(|m| m.len())
        .unwrap_or(0);
    let total = t0.elapsed();
    println!(
        "ranks {} on {} hosts, {} stragglers",
        report.run.world_size,
        report.run.hosts,
        report.stragglers.len()
    );
    println!("read+parse+validate  {:>8.3} s", t_read.as_secs_f64());
    println!("summarise            {:>8.3} s", t_sum.as_secs_f64());
    println!("tables+exports       {:>8.3} s", t_tab.as_secs_f64());
    println!("plots                {:>8.3} s", t_plot.as_secs_f64());
    let (t_target, m_target) = targets();
    println!(
        "total                {:>8.3} s   (target < {t_target} s)",
        total.as_secs_f64()
    );
    println!(
        "report.html          {:>8.2} MB  (target < 5 MB)",
        html_bytes as f64 / 1e6
    );
    println!(
        "peak RSS (VmHWM)     {:>8.0} MiB (target < {m_target} MiB)",
        vm_hwm_mib()
    );
}

fn main() {
    if let Some(p) = std::env::var_os(CHILD) {
        report_phase(Path::new(&p));
        return;
    }
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dir = std::env::temp_dir().join(format!("mfubench-scale-{}", std::process::id()));
    let t = Instant::now();
    let path = {
        let mut g = common::scale_gen();
        g.hosts = hosts();
        let run = common::build(&g);
        common::write_sharded(&dir, &run)
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let shards: u64 = std::fs::read_dir(dir.join("ranks"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "generated {} in {:.1} s: run.json {:.1} MB, shards {:.1} MB (generator not timed)",
        path.display(),
        t.elapsed().as_secs_f64(),
        size as f64 / 1e6,
        shards as f64 / 1e6
    );
    let exe = std::env::current_exe().expect("current exe");
    let status = std::process::Command::new(exe)
        .env(CHILD, &path)
        .status()
        .expect("run the report phase");
    // MFUBENCH_SCALE_KEEP=1 keeps the generated run for inspection.
    if std::env::var_os("MFUBENCH_SCALE_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::process::exit(status.code().unwrap_or(1));
}
