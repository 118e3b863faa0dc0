//! The CPU backend's large buffers are backed by transparent huge pages
//! where the kernel offers them (`host_buf::vec_with_huge_pages`): read back
//! from /proc/self/smaps, not assumed.

#[path = "../../test-support/skip.rs"]
mod skipping;

use mfubench_worker::host_buf::vec_with_huge_pages;

/// The kB of huge pages backing the mapping that holds `addr`, from
/// /proc/self/smaps.
fn huge_kb_at(addr: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((a, b)) = line
            .split_once(' ')
            .and_then(|(range, _)| range.split_once('-'))
        {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                inside = (a..b).contains(&addr);
                continue;
            }
        }
        if inside {
            if let Some(v) = line.strip_prefix("AnonHugePages:") {
                return v.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

#[test]
fn large_buffers_are_backed_by_huge_pages_where_the_kernel_offers_them() {
    let mode =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if !mode.contains("[madvise]") && !mode.contains("[always]") {
        skipping::skip_allowed(
            &skipping::current_test(),
            &format!(
                "transparent huge pages are off in this kernel ({})",
                mode.trim()
            ),
            "a kernel setting, not something CI installs",
        );
        return;
    }
    // 16 MiB of f32: at least 6 whole 2 MiB extents whatever its alignment.
    let v = vec_with_huge_pages(4 << 20, |i| i as f32 + 0.5);
    assert_eq!(v[12345], 12345.5);
    let mid = v.as_ptr() as usize + v.len() * 2;
    let kb = huge_kb_at(mid).expect("the buffer's mapping is in /proc/self/smaps");
    assert!(kb >= 4096, "only {kb} kB of huge pages behind 16 MiB");
    // A small buffer is left alone (and still correct).
    let s = vec_with_huge_pages(10, |i| i as f64);
    assert_eq!(s, (0..10).map(|i| i as f64).collect::<Vec<_>>());
}
