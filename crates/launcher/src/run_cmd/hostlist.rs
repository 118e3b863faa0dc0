//! Slurm hostlist expressions (`node[01-04,07]`, `rack[1-2]-gpu[01-08]`),
//! expanded exactly as `scontrol show hostnames` does: pure functions, so
//! `--hosts` and hostfiles accept what `SLURM_JOB_NODELIST` looks like.
//!
//! Rules (checked against Slurm's `scontrol` in the tests):
//! - a comma separates expressions, except inside brackets;
//! - `[a-b,c]` holds ranges and single numbers; a range keeps the width of
//!   its lower bound, so `[08-11]` gives `08 09 10 11` and `[1-02]` gives
//!   `1 2`; the lower bound must not exceed the upper;
//! - several bracket groups multiply; the last group varies fastest, then
//!   the first, the second, … (Slurm's order: `a[1-2]b[1-3]c[1-2]` gives
//!   `a1b1c1 a1b1c2 a2b1c1 a2b1c2 a1b2c1 …`);
//! - nothing may follow the last bracket (`n[1-2]x` is refused, as by Slurm).

/// Most host names one expression may expand to: a typo such as
/// `n[0-99999999]` must not allocate without bound.
pub const MAX_HOSTS: usize = 1 << 20;

/// Why an expression cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostlistError(pub String);

impl std::fmt::Display for HostlistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits at the commas that are not inside brackets.
pub fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// One bracket group: the numbers it lists, as formatted strings.
fn expand_group(body: &str, expr: &str) -> Result<Vec<String>, HostlistError> {
    let bad = |what: String| HostlistError(format!("{expr:?}: {what}"));
    let mut out = Vec::new();
    for part in body.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(lo) || !digits(hi) {
            return Err(bad(format!(
                "[{body}]: {part:?} is not a number or a range a-b"
            )));
        }
        let (l, h): (u64, u64) = match (lo.parse(), hi.parse()) {
            (Ok(l), Ok(h)) => (l, h),
            _ => return Err(bad(format!("[{body}]: {part:?} is too large"))),
        };
        if l > h {
            return Err(bad(format!("[{body}]: the range {part:?} runs backwards")));
        }
        if (h - l) as usize >= MAX_HOSTS || out.len() + (h - l) as usize >= MAX_HOSTS {
            return Err(bad(format!("expands to more than {MAX_HOSTS} hosts")));
        }
        let width = lo.len();
        out.extend((l..=h).map(|n| format!("{n:0width$}")));
    }
    Ok(out)
}

/// Expands one expression without top-level commas, e.g. `gpu[01-04]`.
fn expand_one(expr: &str) -> Result<Vec<String>, HostlistError> {
    // Literal pieces between the groups, and the groups.
    let mut literals: Vec<&str> = Vec::new();
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut rest = expr;
    while let Some(open) = rest.find('[') {
        let close = rest[open..]
            .find(']')
            .map(|c| open + c)
            .ok_or_else(|| HostlistError(format!("{expr:?}: '[' without a closing ']'")))?;
        let body = &rest[open + 1..close];
        if body.contains('[') {
            return Err(HostlistError(format!(
                "{expr:?}: brackets cannot nest inside brackets"
            )));
        }
        literals.push(&rest[..open]);
        groups.push(expand_group(body, expr)?);
        rest = &rest[close + 1..];
    }
    if rest.contains(']') {
        return Err(HostlistError(format!(
            "{expr:?}: ']' without an opening '['"
        )));
    }
    if groups.is_empty() {
        return Ok(vec![expr.to_string()]);
    }
    if !rest.is_empty() {
        return Err(HostlistError(format!(
            "{expr:?}: text after the last ']' ({rest:?}) is not a Slurm hostlist; \
             put a range at the end of the name"
        )));
    }
    let total = groups
        .iter()
        .try_fold(1usize, |acc, g| acc.checked_mul(g.len()))
        .filter(|t| *t <= MAX_HOSTS)
        .ok_or_else(|| {
            HostlistError(format!("{expr:?}: expands to more than {MAX_HOSTS} hosts"))
        })?;
    // Significance, least first: the last group, then the first, second, …
    let n = groups.len();
    let order: Vec<usize> = std::iter::once(n - 1).chain(0..n - 1).collect();
    let mut idx = vec![0usize; n];
    let mut out = Vec::with_capacity(total);
    for _ in 0..total {
        let mut name = String::new();
        for g in 0..n {
            name.push_str(literals[g]);
            name.push_str(&groups[g][idx[g]]);
        }
        out.push(name);
        for &g in &order {
            idx[g] += 1;
            if idx[g] < groups[g].len() {
                break;
            }
            idx[g] = 0;
        }
    }
    Ok(out)
}

/// Expands a hostlist such as `node[01-04,07],login1` into host names, in
/// `scontrol show hostnames` order. Empty elements are refused.
pub fn expand(list: &str) -> Result<Vec<String>, HostlistError> {
    let mut out = Vec::new();
    for item in split_top_level(list) {
        let item = item.trim();
        if item.is_empty() {
            return Err(HostlistError(format!("{list:?}: empty host name")));
        }
        out.extend(expand_one(item)?);
        if out.len() > MAX_HOSTS {
            return Err(HostlistError(format!(
                "{list:?}: expands to more than {MAX_HOSTS} hosts"
            )));
        }
    }
    Ok(out)
}

/// The shortest-form hostlist of `hosts` that [`expand`] turns back into
/// the same set (sorted, each once), as `scontrol show hostlist` writes
/// it: names that differ only in a trailing number share brackets
/// (`gpu-node[01-04,07]`); a range keeps the width of its lower bound, as
/// [`expand`] reads it (`n[08-10]`, `n[1-10]`). Names without a trailing
/// number are listed as they are.
pub fn compress(hosts: &[String]) -> String {
    use std::collections::BTreeMap;
    // prefix → (number, its text); names without a number as they are.
    let mut groups: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    let mut plain: Vec<String> = Vec::new();
    for h in hosts {
        let digits = h.len() - h.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, num) = h.split_at(h.len() - digits);
        match num.parse::<u64>() {
            Ok(v) if digits > 0 && digits <= 18 => groups
                .entry(prefix.to_string())
                .or_default()
                .push((v, num.to_string())),
            _ => plain.push(h.clone()),
        }
    }
    plain.sort();
    plain.dedup();
    let mut out: Vec<String> = plain;
    for (prefix, mut nums) in groups {
        nums.sort();
        nums.dedup();
        if let [(_, only)] = nums.as_slice() {
            out.push(format!("{prefix}{only}"));
            continue;
        }
        // A range `lo-hi` expands with lo's width: it takes the next
        // number while that one is written at that width.
        let mut parts: Vec<String> = Vec::new();
        let mut i = 0;
        while i < nums.len() {
            let width = nums[i].1.len();
            let mut j = i;
            while j + 1 < nums.len()
                && nums[j + 1].0 == nums[j].0 + 1
                && nums[j + 1].1 == format!("{:0width$}", nums[j + 1].0)
            {
                j += 1;
            }
            parts.push(if i == j {
                nums[i].1.clone()
            } else {
                format!("{}-{}", nums[i].1, nums[j].1)
            });
            i = j + 1;
        }
        out.push(format!("{prefix}[{}]", parts.join(",")));
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Vec<String> {
        expand(s).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn ranges_lists_and_padding() {
        assert_eq!(
            e("node[01-04,07]"),
            ["node01", "node02", "node03", "node04", "node07"]
        );
        assert_eq!(e("n[08-11]"), ["n08", "n09", "n10", "n11"]);
        assert_eq!(e("n[1-02]"), ["n1", "n2"]);
        assert_eq!(e("n[9-11]"), ["n9", "n10", "n11"]);
        assert_eq!(e("b[009-011]"), ["b009", "b010", "b011"]);
        assert_eq!(e("n[5]"), ["n5"]);
        assert_eq!(e("gpu-node-[01-02]"), ["gpu-node-01", "gpu-node-02"]);
        assert_eq!(e("plain"), ["plain"]);
        assert_eq!(e("a,b[1-2],c"), ["a", "b1", "b2", "c"]);
    }

    #[test]
    fn several_groups_in_slurm_order() {
        assert_eq!(e("a[1-2]b[3-4]"), ["a1b3", "a1b4", "a2b3", "a2b4"]);
        assert_eq!(
            e("a[1-2]b[1-3]c[1-2]"),
            [
                "a1b1c1", "a1b1c2", "a2b1c1", "a2b1c2", "a1b2c1", "a1b2c2", "a2b2c1", "a2b2c2",
                "a1b3c1", "a1b3c2", "a2b3c1", "a2b3c2"
            ]
        );
    }

    #[test]
    fn bad_expressions_are_refused() {
        for bad in [
            "n[3-1]",
            "n[]",
            "n[1-3",
            "n]1",
            "n[a]",
            "n[1-2]x",
            "n[[1]]",
            "a,,b",
            "",
            "n[0-99999999]",
            "a[0-9999]b[0-9999]",
        ] {
            assert!(expand(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn compress_is_the_inverse_of_expand() {
        let c = |v: &[&str]| compress(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            c(&["gpu-node01", "gpu-node02", "gpu-node03", "gpu-node07"]),
            "gpu-node[01-03,07]"
        );
        assert_eq!(c(&["hostC"]), "hostC");
        assert_eq!(c(&["n3", "n1", "n2", "n10", "n3"]), "n[1-3,10]");
        assert_eq!(c(&["a1", "b2"]), "a1,b2");
        assert_eq!(c(&["login", "n08", "n09", "n10"]), "login,n[08-10]");
        assert_eq!(c(&[]), "");
        for hosts in [
            vec!["node001", "node002", "node010", "node100", "x", "node9"],
            vec!["rack1-gpu01", "rack1-gpu02", "rack2-gpu01"],
        ] {
            let hosts: Vec<String> = hosts.into_iter().map(String::from).collect();
            let mut want = hosts.clone();
            want.sort();
            let mut back = expand(&compress(&hosts)).unwrap();
            back.sort();
            assert_eq!(back, want, "{}", compress(&hosts));
        }
    }
}
