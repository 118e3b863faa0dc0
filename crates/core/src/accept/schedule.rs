//! The pair schedules of the link stage: the round-robin tournament and,
//! above `accept.max_pair_nodes`, the sampled schedule.

use super::AcceptSettings;

/// A pair of nodes (indices into the node list), `a < b`.
pub type Pair = (usize, usize);

/// The round-robin tournament of `n` nodes (circle method): every pair
/// exactly once, each round a set of disjoint pairs that run in parallel.
/// n − 1 rounds for even n; for odd n a phantom node makes it n rounds, in
/// each of which one node sits out (the bye).
pub fn tournament(n: usize) -> Vec<Vec<Pair>> {
    if n < 2 {
        return Vec::new();
    }
    let m = if n % 2 == 0 { n } else { n + 1 };
    // Slot 0 is fixed; the others rotate by one each round.
    let mut rounds = Vec::with_capacity(m - 1);
    for r in 0..m - 1 {
        let at = |slot: usize| -> usize {
            if slot == 0 {
                0
            } else {
                1 + (slot - 1 + r) % (m - 1)
            }
        };
        let mut round = Vec::with_capacity(m / 2);
        for i in 0..m / 2 {
            let (x, y) = (at(i), at(m - 1 - i));
            if x < n && y < n {
                round.push((x.min(y), x.max(y)));
            }
        }
        round.sort_unstable();
        rounds.push(round);
    }
    rounds
}

/// The sampled schedule for more nodes than `accept.max_pair_nodes`: the
/// ring (node i with i + 1 mod n; two rounds for even n, three for odd),
/// then `extra` random perfect matchings (a seeded shuffle of the nodes,
/// paired in order; the same on every rank). Every node is in at least two
/// ring pairs, so a node whose links are all slow is still recognisable.
pub fn sampled(n: usize, extra: usize, seed: u64) -> Vec<Vec<Pair>> {
    if n < 2 {
        return Vec::new();
    }
    let ring: Vec<Pair> = if n == 2 {
        vec![(0, 1)]
    } else {
        (0..n)
            .map(|i| (i.min((i + 1) % n), i.max((i + 1) % n)))
            .collect()
    };
    let mut rounds: Vec<Vec<Pair>> = Vec::new();
    // Ring edges i = 0, 2, 4, … then 1, 3, 5, …; with n odd the last edge
    // (n−1, 0) shares node 0 with edge 0 and goes to a third round.
    let even: Vec<Pair> = ring.iter().step_by(2).copied().collect();
    let odd: Vec<Pair> = ring.iter().skip(1).step_by(2).copied().collect();
    if n % 2 == 1 && n > 2 {
        let last = *even.last().expect("n > 2");
        rounds.push(even[..even.len() - 1].to_vec());
        rounds.push(odd);
        rounds.push(vec![last]);
    } else {
        rounds.push(even);
        if !odd.is_empty() {
            rounds.push(odd);
        }
    }
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for _ in 0..extra {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut round: Vec<Pair> = order
            .chunks_exact(2)
            .map(|c| (c[0].min(c[1]), c[0].max(c[1])))
            .collect();
        round.sort_unstable();
        rounds.push(round);
    }
    for r in &mut rounds {
        r.sort_unstable();
    }
    rounds
}

/// Seed of the sampled schedule (fixed, so reruns compare the same pairs).
pub const SAMPLED_SEED: u64 = 0x6d66_7562_656e_6368;

/// The link stage's schedule for `n` nodes and the name it is recorded under.
pub fn link_schedule(n: usize, settings: &AcceptSettings) -> (&'static str, Vec<Vec<Pair>>) {
    if n as u64 > settings.max_pair_nodes {
        (
            "sampled",
            sampled(n, settings.sampled_rounds as usize, SAMPLED_SEED),
        )
    } else {
        ("tournament", tournament(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn tournament_covers_every_pair_once() {
        for n in 2..=65usize {
            let rounds = tournament(n);
            let want_rounds = if n % 2 == 0 { n - 1 } else { n };
            assert_eq!(rounds.len(), want_rounds, "n = {n}");
            let mut seen = BTreeSet::new();
            for r in &rounds {
                // Disjoint pairs within a round; at most one bye.
                let mut nodes = BTreeSet::new();
                for &(a, b) in r {
                    assert!(a < b && b < n, "n = {n}: {a}, {b}");
                    assert!(nodes.insert(a) && nodes.insert(b), "n = {n}: node twice");
                    assert!(seen.insert((a, b)), "n = {n}: pair ({a}, {b}) twice");
                }
                assert_eq!(nodes.len(), n - n % 2, "n = {n}");
            }
            assert_eq!(seen.len(), n * (n - 1) / 2, "n = {n}");
        }
        assert!(tournament(1).is_empty() && tournament(0).is_empty());
        assert_eq!(tournament(2), vec![vec![(0, 1)]]);
        assert_eq!(tournament(3).len(), 3);
    }

    #[test]
    fn sampled_covers_every_node() {
        for n in [2usize, 3, 4, 5, 65, 66, 67, 100, 257, 1000] {
            let rounds = sampled(n, 8, SAMPLED_SEED);
            let mut degree = vec![0usize; n];
            for r in &rounds {
                let mut nodes = BTreeSet::new();
                for &(a, b) in r {
                    assert!(a < b && b < n);
                    assert!(
                        nodes.insert(a) && nodes.insert(b),
                        "n = {n}: node twice in a round"
                    );
                    degree[a] += 1;
                    degree[b] += 1;
                }
            }
            // The ring puts every node in two pairs (one for n = 2), the
            // matchings each add one (or a bye for odd n).
            let min = degree.iter().min().copied().unwrap();
            assert!(min >= if n == 2 { 1 } else { 2 }, "n = {n}: {min}");
            assert!(rounds.len() <= 3 + 8);
        }
        // Same seed, same schedule on every rank.
        assert_eq!(sampled(100, 8, 7), sampled(100, 8, 7));
        let s = AcceptSettings {
            max_pair_nodes: 4,
            ..Default::default()
        };
        assert_eq!(link_schedule(4, &s).0, "tournament");
        assert_eq!(link_schedule(5, &s).0, "sampled");
    }
}
