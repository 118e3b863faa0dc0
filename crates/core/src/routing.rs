//! How a step's tokens are routed to the experts of a mixture-of-experts
//! block (`[model] routing`): how many tokens each expert's GEMMs get.
//!
//! - `balanced`: t · top_k routed tokens spread evenly (the first
//!   t · top_k mod experts experts one more).
//! - `zipf:S`: expert popularity follows Zipf's law with exponent S (the
//!   j-th most popular expert's share ∝ 1 / j^S, S ≥ 0; 0 is balanced), the
//!   popularity order a permutation of the experts drawn from
//!   `routing_seed`. Real routers are skewed like this, which makes some
//!   experts' GEMMs long and others short.
//!
//! The counts are apportioned, not sampled: the same config gives the same
//! counts on every rank and every run. Every expert gets at least one token
//! (an expert with no tokens would run empty GEMMs) and at most t (a token
//! goes to top_k *distinct* experts); the sum is exactly t · top_k.

/// A routing rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Routing {
    /// Evenly.
    Balanced,
    /// Zipf-skewed with this exponent.
    Zipf(f64),
}

impl Routing {
    /// Parses `balanced` or `zipf:S` (S a finite number ≥ 0, at most 10).
    pub fn parse(s: &str) -> Result<Routing, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("balanced") {
            return Ok(Routing::Balanced);
        }
        if let Some(x) = t.strip_prefix("zipf:") {
            return match x.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && (0.0..=10.0).contains(&v) => Ok(Routing::Zipf(v)),
                _ => Err(format!(
                    "\"{s}\": the Zipf exponent must be a number from 0 to 10, e.g. \"zipf:1.2\""
                )),
            };
        }
        Err(format!(
            "\"{s}\": use \"balanced\" or \"zipf:S\" (e.g. \"zipf:1.2\")"
        ))
    }
}

/// Tokens each of `experts` experts receives when `tokens` tokens are each
/// routed to `top_k` distinct experts by `routing` (`seed` orders the Zipf
/// popularity). Needs tokens · top_k ≥ experts and top_k ≤ experts (the
/// config checks both).
pub fn tokens_per_expert(
    tokens: u64,
    top_k: u64,
    experts: u64,
    routing: Routing,
    seed: u64,
) -> Vec<u64> {
    let e = experts.max(1) as usize;
    let total = tokens * top_k;
    let s = match routing {
        Routing::Balanced => 0.0,
        Routing::Zipf(s) => s,
    };
    if s == 0.0 || total < experts {
        return (0..experts)
            .map(|i| total / experts.max(1) + u64::from(i < total % experts.max(1)))
            .collect();
    }
    // Popularity rank of each expert: a seeded Fisher–Yates permutation.
    let mut order: Vec<usize> = (0..e).collect();
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    for i in (1..e).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut weight = vec![0.0; e];
    for (rank, &expert) in order.iter().enumerate() {
        weight[expert] = 1.0 / ((rank + 1) as f64).powf(s);
    }
    // One token each, then the rest by weight under the cap of `tokens`
    // each (water-filling: an expert whose share would pass the cap is
    // capped and the rest re-shared).
    let mut count = vec![1u64; e];
    let cap = tokens - 1;
    let mut left = total - experts;
    let mut open: Vec<usize> = (0..e).collect();
    loop {
        let w: f64 = open.iter().map(|&i| weight[i]).sum();
        let over: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| left as f64 * weight[i] / w > cap as f64)
            .collect();
        if over.is_empty() {
            break;
        }
        for i in &over {
            count[*i] += cap;
            left -= cap;
        }
        open.retain(|i| !over.contains(i));
    }
    // Largest remainder among the open experts.
    let w: f64 = open.iter().map(|&i| weight[i]).sum();
    let mut given = 0;
    let mut rest: Vec<(f64, usize)> = Vec::with_capacity(open.len());
    for &i in &open {
        let share = left as f64 * weight[i] / w;
        let whole = (share.floor() as u64).min(cap);
        count[i] += whole;
        given += whole;
        rest.push((share - whole as f64, i));
    }
    rest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut k = 0;
    while given < left && !rest.is_empty() {
        let i = rest[k % rest.len()].1;
        if count[i] < tokens {
            count[i] += 1;
            given += 1;
        }
        k += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_rules() {
        assert_eq!(Routing::parse("balanced"), Ok(Routing::Balanced));
        assert_eq!(Routing::parse("zipf:1.2"), Ok(Routing::Zipf(1.2)));
        assert!(Routing::parse("zipf:-1")
            .unwrap_err()
            .contains("from 0 to 10"));
        assert!(Routing::parse("zipf:x").is_err());
        assert!(Routing::parse("random")
            .unwrap_err()
            .contains("\"balanced\" or"));
    }

    #[test]
    fn balanced_spreads_evenly() {
        assert_eq!(
            tokens_per_expert(10, 2, 4, Routing::Balanced, 1),
            vec![5, 5, 5, 5]
        );
        assert_eq!(
            tokens_per_expert(5, 2, 4, Routing::Balanced, 1),
            vec![3, 3, 2, 2]
        );
        // Zipf with exponent 0 is balanced.
        assert_eq!(
            tokens_per_expert(5, 2, 4, Routing::Zipf(0.0), 9),
            tokens_per_expert(5, 2, 4, Routing::Balanced, 1)
        );
    }

    #[test]
    fn zipf_counts_are_skewed_exact_capped_and_repeatable() {
        for (t, k, e, s) in [
            (4096, 2, 8, 1.2),
            (512, 4, 60, 1.5),
            (100, 1, 4, 8.0),
            (16, 2, 16, 1.0),
        ] {
            let c = tokens_per_expert(t, k, e, Routing::Zipf(s), 7);
            assert_eq!(c.len() as u64, e);
            assert_eq!(c.iter().sum::<u64>(), t * k, "{c:?}");
            assert!(c.iter().all(|&n| (1..=t).contains(&n)), "{c:?}");
            assert_eq!(c, tokens_per_expert(t, k, e, Routing::Zipf(s), 7));
        }
        // 4096 tokens × 2 over 8 experts at S = 1.2: weights 1/j^1.2 sum to
        // 2.4365…, so the top expert gets 8192 / 2.4365 ≈ 3362 (plus its
        // guaranteed token, within one of the apportionment).
        let c = tokens_per_expert(4096, 2, 8, Routing::Zipf(1.2), 7);
        let top = *c.iter().max().unwrap();
        let w: f64 = (1..=8).map(|j| 1.0 / (j as f64).powf(1.2)).sum();
        let want = 1.0 + 8184.0 / w;
        assert!((top as f64 - want).abs() <= 1.0, "{top} vs {want}");
        // Strong skew hits the cap: at most t per expert.
        let c = tokens_per_expert(100, 2, 4, Routing::Zipf(8.0), 7);
        assert_eq!(*c.iter().max().unwrap(), 100);
        // Another seed, another popularity order (same multiset of counts).
        let mut a = tokens_per_expert(4096, 2, 8, Routing::Zipf(1.2), 7);
        let mut b = tokens_per_expert(4096, 2, 8, Routing::Zipf(1.2), 8);
        assert_ne!(a, b);
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
