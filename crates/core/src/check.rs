//! The all-reduce correctness check: every rank fills its gradient buckets
//! with small integers that depend on the rank and the element index, so the
//! reduced sum of every element is known in closed form — and **exact in
//! every gradient dtype at any rank count**.
//!
//! Why it is exact: each element is non-zero on at most
//! [`MAX_CONTRIBUTORS`] = 64 ranks, with values in {−2, …, 2}. Every partial
//! sum an all-reduce can form (ring, tree, any order or grouping) is a sum
//! over a subset of the ranks, so it is an integer of magnitude at most
//! 2 · 64 = 128, exactly representable in bf16 (8 significant bits: every
//! integer up to 256), fp16 (up to 2048) and f32/f64. A comparison with zero
//! tolerance is then right at 2 ranks and at 16,384.
//!
//! Up to 64 ranks every rank contributes to every element (≈ 80 % of the
//! values are non-zero). Above, element `i` of bucket `b` is non-zero on the
//! 64 ranks `start, start + 1, …, start + 63` (modulo the world size), with
//! `start` moving with `i` and `b`, so every rank contributes to 64/n of the
//! elements. All-reduce speed does not depend on the values (no library
//! compresses), and the check runs on untimed steps only.
//!
//! Like nccl-tests' `#wrong`, the result is the number of elements that
//! differ from the expected sum.

use crate::metrics::Collective;

/// Most ranks that hold a non-zero value for any one element.
pub const MAX_CONTRIBUTORS: u64 = 64;

/// Period of the value pattern in the rank.
const PERIOD: u64 = 5;

/// The value rank `rank` would hold if it contributes: one of −2, …, 2.
fn base(rank: u64, bucket: u64, index: u64) -> f64 {
    let v = (index.wrapping_mul(31) ^ bucket.wrapping_mul(7)).wrapping_add(rank.wrapping_mul(17))
        % PERIOD;
    v as f64 - 2.0
}

/// First rank of the contributing window of an element (0 while every rank
/// contributes).
fn window_start(ranks: u64, bucket: u64, index: u64) -> u64 {
    if ranks <= MAX_CONTRIBUTORS {
        0
    } else {
        (index.wrapping_mul(13) ^ bucket.wrapping_mul(101)) % ranks
    }
}

/// Whether `rank` (of `ranks`) holds a non-zero value for this element.
pub fn contributes(ranks: u64, rank: u64, bucket: u64, index: u64) -> bool {
    if ranks <= MAX_CONTRIBUTORS {
        return true;
    }
    let start = window_start(ranks, bucket, index);
    (rank + ranks - start) % ranks < MAX_CONTRIBUTORS
}

/// Value rank `rank` of a world of `ranks` puts in element `index` of
/// bucket `bucket`: an integer in −2, …, 2, zero outside the element's
/// window of contributors.
pub fn pattern(ranks: u64, rank: u64, bucket: u64, index: u64) -> f64 {
    if contributes(ranks, rank, bucket, index) {
        base(rank, bucket, index)
    } else {
        0.0
    }
}

/// Ranks r < x with r ≡ j (mod PERIOD).
fn count_below(x: u64, j: u64) -> u64 {
    if x <= j {
        0
    } else {
        (x - j - 1) / PERIOD + 1
    }
}

/// Σ base(r) over ranks lo..hi, in O(PERIOD): base(r) depends on r only
/// through r mod PERIOD (17·PERIOD ≡ 0).
fn range_sum(lo: u64, hi: u64, bucket: u64, index: u64) -> f64 {
    (0..PERIOD)
        .map(|j| (count_below(hi, j) - count_below(lo, j)) as f64 * base(j, bucket, index))
        .sum()
}

/// Sum over ranks 0..`ranks` of [`pattern`] for one element, in O(PERIOD).
pub fn expected_sum(ranks: u64, bucket: u64, index: u64) -> f64 {
    if ranks <= MAX_CONTRIBUTORS {
        return range_sum(0, ranks, bucket, index);
    }
    let start = window_start(ranks, bucket, index);
    let end = start + MAX_CONTRIBUTORS;
    if end <= ranks {
        range_sum(start, end, bucket, index)
    } else {
        range_sum(start, ranks, bucket, index) + range_sum(0, end - ranks, bucket, index)
    }
}

/// Counts elements of `values` (bucket `bucket`, starting at element
/// `offset`) that differ from the expected sum over `ranks`. The sums are
/// exact in every gradient dtype (see the module note), so any difference,
/// or a NaN, is wrong.
pub fn count_wrong(
    values: impl IntoIterator<Item = f64>,
    ranks: u64,
    bucket: u64,
    offset: u64,
) -> u64 {
    values
        .into_iter()
        .enumerate()
        .filter(|(i, v)| {
            let want = expected_sum(ranks, bucket, offset + *i as u64);
            v.is_nan() || *v != want
        })
        .count() as u64
}

/// Value rank `rank` puts at element `index` of its block in the
/// all-gather check (`bucket` tells sizes apart): an integer in −125 … 125,
/// exact in every gradient dtype, and different on any two ranks closer
/// than 251 for the same element (31 is invertible modulo the prime 251),
/// so a block landing at another rank's place is counted wrong.
pub fn gather_value(rank: u64, bucket: u64, index: u64) -> f64 {
    let v = (rank % 251 * 31 + index % 251 * 7 + bucket % 251 * 13) % 251;
    v as f64 - 125.0
}

/// Counts elements of an all-gather's result (`per_rank` elements from
/// every rank, rank-major, as [`gather_value`] filled them) that differ
/// from what their rank sent; a NaN is wrong.
pub fn count_wrong_gathered(
    values: impl IntoIterator<Item = f64>,
    per_rank: u64,
    bucket: u64,
) -> u64 {
    count_wrong_gathered_at(values, per_rank, bucket, 0)
}

/// As [`count_wrong_gathered`], for values starting at element `offset`
/// of the result.
pub fn count_wrong_gathered_at(
    values: impl IntoIterator<Item = f64>,
    per_rank: u64,
    bucket: u64,
    offset: u64,
) -> u64 {
    let n = per_rank.max(1);
    values
        .into_iter()
        .enumerate()
        .filter(|(i, v)| {
            let at = offset + *i as u64;
            v.is_nan() || *v != gather_value(at / n, bucket, at % n)
        })
        .count() as u64
}

/// What rank `src` sends rank `dst` at element `index` of its block for
/// `dst` in all-to-all `id`: an integer in −125 … 125, exact in every
/// gradient dtype, different for any two sources (and any two
/// destinations) closer than 251 (31 and 17 are invertible modulo the prime
/// 251), so a block from the wrong rank, or meant for another, is counted
/// wrong.
pub fn all_to_all_value(src: u64, dst: u64, id: u64, index: u64) -> f64 {
    let v = (src % 251 * 31 + dst % 251 * 17 + index % 251 * 7 + id % 251 * 13) % 251;
    v as f64 - 125.0
}

/// Block `p` of an all-to-all buffer whose blocks hold `counts[p]`
/// elements, and the offset in it, of element `index`.
fn block_of(counts: &[u64], index: u64) -> (u64, u64) {
    let mut start = 0;
    for (p, &c) in counts.iter().enumerate() {
        if index < start + c {
            return (p as u64, index - start);
        }
        start += c;
    }
    (counts.len() as u64, index - start)
}

/// Element `index` of rank `rank`'s send buffer in all-to-all `id`, whose
/// block `p` (of `counts[p]` elements) goes to rank `p`.
pub fn all_to_all_send_value(counts: &[u64], rank: u64, id: u64, index: u64) -> f64 {
    let (dst, at) = block_of(counts, index);
    all_to_all_value(rank, dst, id, at)
}

/// Wrong elements among `values`, elements `offset..` of what rank `rank`
/// received in all-to-all `id`: block `s` (of `counts[s]` elements) from
/// rank `s`, as [`all_to_all_send_value`] filled it. A NaN, or an element
/// past the blocks, is wrong.
pub fn count_wrong_all_to_all(
    values: impl IntoIterator<Item = f64>,
    counts: &[u64],
    rank: u64,
    id: u64,
    offset: u64,
) -> u64 {
    let n = counts.len() as u64;
    values
        .into_iter()
        .enumerate()
        .filter(|(i, v)| {
            let (src, at) = block_of(counts, offset + *i as u64);
            src >= n || v.is_nan() || *v != all_to_all_value(src, rank, id, at)
        })
        .count() as u64
}

/// The one collective check, for every backend and the acceptance suite:
/// what rank `rank` of a group of `size` sends at element `index` of
/// collective `id` of kind `kind` ([`gather_value`] for an all-gather's
/// shard, the known-sum [`pattern`] otherwise; an all-to-all is filled by
/// [`all_to_all_send_value`], which knows its counts).
pub fn send_value(kind: Collective, size: u64, rank: u64, id: u64, index: u64) -> f64 {
    match kind {
        Collective::AllGather => gather_value(rank, id, index),
        // Its values depend on the per-peer counts, which this call does
        // not know: all_to_all_send_value fills it. NaN is never right.
        Collective::AllToAll => f64::NAN,
        _ => pattern(size, rank, id, index),
    }
}

/// The one collective check's count: wrong elements among `values`, which
/// are elements `offset..` of what rank `rank` of a group of `size`
/// received from collective `id` of kind `kind` (`shard`: elements each
/// rank contributes to an all-gather or receives from a reduce-scatter).
pub fn count_wrong_result(
    kind: Collective,
    values: impl IntoIterator<Item = f64>,
    size: u64,
    rank: u64,
    shard: u64,
    id: u64,
    offset: u64,
) -> u64 {
    match kind {
        Collective::AllGather => count_wrong_gathered_at(values, shard, id, offset),
        // This rank's block of the sums starts at rank · shard.
        Collective::ReduceScatter => count_wrong(values, size, id, rank * shard + offset),
        Collective::AllReduce | Collective::SendRecv => count_wrong(values, size, id, offset),
        // An even all-to-all: `shard` elements from every rank (the step's
        // uneven ones use count_wrong_all_to_all with their counts).
        Collective::AllToAll => {
            count_wrong_all_to_all(values, &vec![shard; size as usize], rank, id, offset)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_check_for_every_kind_on_known_answers() {
        // 3 ranks, shard 2: every rank sends its values, the right result
        // of each kind has no wrong element, one changed element is counted.
        let (size, shard, id) = (3u64, 2u64, 9u64);
        let full = size * shard;
        let send = |k, r| {
            (0..if k == Collective::AllGather {
                shard
            } else {
                full
            })
                .map(move |i| send_value(k, size, r, id, i))
                .collect::<Vec<f64>>()
        };
        let sum: Vec<f64> = (0..full)
            .map(|i| {
                (0..size)
                    .map(|r| send(Collective::AllReduce, r)[i as usize])
                    .sum()
            })
            .collect();
        assert_eq!(
            count_wrong_result(Collective::AllReduce, sum.clone(), size, 1, shard, id, 0),
            0
        );
        let block = |r: u64| sum[(r * shard) as usize..((r + 1) * shard) as usize].to_vec();
        assert_eq!(
            count_wrong_result(Collective::ReduceScatter, block(2), size, 2, shard, id, 0),
            0
        );
        assert_eq!(
            count_wrong_result(Collective::ReduceScatter, block(1), size, 2, shard, id, 0),
            2
        );
        let gathered: Vec<f64> = (0..size)
            .flat_map(|r| send(Collective::AllGather, r))
            .collect();
        assert_eq!(
            count_wrong_result(
                Collective::AllGather,
                gathered.clone(),
                size,
                0,
                shard,
                id,
                0
            ),
            0
        );
        assert_eq!(
            count_wrong_result(
                Collective::AllGather,
                gathered[3..].to_vec(),
                size,
                0,
                shard,
                id,
                3
            ),
            0
        );
        let mut bad = sum;
        bad[4] += 1.0;
        assert_eq!(
            count_wrong_result(Collective::AllReduce, bad, size, 0, shard, id, 0),
            1
        );
    }

    #[test]
    fn gathered_blocks_are_checked_by_their_rank() {
        // 4 ranks × 3 elements: the right concatenation has no wrong
        // element; swapping two ranks' blocks makes both wrong; a NaN is
        // wrong.
        let good: Vec<f64> = (0..4u64)
            .flat_map(|r| (0..3u64).map(move |i| gather_value(r, 5, i)))
            .collect();
        assert_eq!(count_wrong_gathered(good.iter().copied(), 3, 5), 0);
        let mut swapped = good.clone();
        swapped[3..6].copy_from_slice(&good[6..9]);
        swapped[6..9].copy_from_slice(&good[3..6]);
        assert_eq!(count_wrong_gathered(swapped, 3, 5), 6);
        let mut nan = good.clone();
        nan[11] = f64::NAN;
        assert_eq!(count_wrong_gathered(nan, 3, 5), 1);
        // Small integers: exact in bf16 (8 significant bits) and distinct
        // between ranks for one element.
        for r in 0..300u64 {
            let v = gather_value(r, 9, 17);
            assert!(v.abs() <= 125.0 && v.fract() == 0.0);
            for q in (r + 1)..(r + 251).min(300) {
                assert_ne!(v, gather_value(q, 9, 17), "ranks {r} and {q}");
            }
        }
    }

    #[test]
    fn reduce_scatter_shards_are_the_sums_at_their_offset() {
        // Rank `me` of 3 holds block `me` of the sums: count_wrong with
        // the block's offset accepts it and rejects another block.
        let (ranks, per) = (3u64, 4u64);
        let sums = |me: u64| -> Vec<f64> {
            (0..per)
                .map(|i| {
                    (0..ranks)
                        .map(|r| pattern(ranks, r, 2, me * per + i))
                        .sum::<f64>()
                })
                .collect()
        };
        for me in 0..ranks {
            assert_eq!(count_wrong(sums(me), ranks, 2, me * per), 0);
        }
        assert!(count_wrong(sums(1), ranks, 2, 0) > 0);
    }

    /// Rounds to the nearest value with `bits` significant bits (ties to
    /// even), as storing in a float of that precision does.
    fn round_to_bits(x: f64, bits: u32) -> f64 {
        if x == 0.0 || !x.is_finite() {
            return x;
        }
        let e = x.abs().log2().floor() as i32;
        let scale = 2f64.powi(bits as i32 - 1 - e);
        let y = x * scale;
        let r = y.round();
        // ties to even
        let r = if (y - y.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r - y.signum()
        } else {
            r
        };
        r / scale
    }

    /// Significant bits of bf16, fp16 and f32.
    const DTYPES: [(&str, u32); 3] = [("bf16", 8), ("fp16", 11), ("f32", 24)];

    #[test]
    fn rounding_helper_known_answers() {
        assert_eq!(round_to_bits(257.0, 8), 256.0); // bf16 cannot hold 257
        assert_eq!(round_to_bits(256.0, 8), 256.0);
        assert_eq!(round_to_bits(255.0, 8), 255.0);
        assert_eq!(round_to_bits(2049.0, 11), 2048.0);
        assert_eq!(round_to_bits(-129.0, 8), -129.0);
        assert_eq!(round_to_bits(0.1, 24), 0.1f32 as f64);
    }

    #[test]
    fn expected_sum_matches_brute_force() {
        for ranks in [1u64, 2, 3, 5, 7, 16, 33, 64, 65, 66, 100, 129, 300] {
            for bucket in 0..3 {
                for i in 0..40 {
                    let brute: f64 = (0..ranks).map(|r| pattern(ranks, r, bucket, i)).sum();
                    assert_eq!(expected_sum(ranks, bucket, i), brute, "ranks {ranks} i {i}");
                }
            }
        }
    }

    /// The sums stay exact in bf16, fp16 and f32 at every rank count from
    /// 2 to 16,384: at most 64 contributors, and every partial sum of a ring
    /// (rank order and reverse) and of a binary tree, accumulated in the
    /// dtype's own rounding, equals the exact sum.
    #[test]
    fn exact_in_every_dtype_up_to_16384_ranks() {
        let mut counts: Vec<u64> = (2..=130).collect();
        counts.extend([255, 256, 257, 1000, 1024, 4095, 4096, 8191, 16_383, 16_384]);
        for &ranks in &counts {
            for bucket in [0u64, 3] {
                for index in [0u64, 1, 7, 1000, 123_457, (1 << 30) + 5] {
                    let vals: Vec<f64> = (0..ranks)
                        .map(|r| pattern(ranks, r, bucket, index))
                        .collect();
                    let nonzero = (0..ranks)
                        .filter(|&r| contributes(ranks, r, bucket, index))
                        .count() as u64;
                    assert!(nonzero <= MAX_CONTRIBUTORS.min(ranks));
                    let want = expected_sum(ranks, bucket, index);
                    for (name, bits) in DTYPES {
                        let ring = vals.iter().fold(0.0, |acc, v| round_to_bits(acc + v, bits));
                        let back = vals
                            .iter()
                            .rev()
                            .fold(0.0, |acc, v| round_to_bits(acc + v, bits));
                        let mut level = vals.clone();
                        while level.len() > 1 {
                            level = level
                                .chunks(2)
                                .map(|c| round_to_bits(c.iter().sum(), bits))
                                .collect();
                        }
                        for got in [ring, back, level[0]] {
                            assert_eq!(got, want, "{name}: {ranks} ranks, b{bucket} i{index}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_rank_contributes_somewhere_and_values_vary() {
        let ranks = 1000;
        for r in [0u64, 1, 499, 999] {
            let n = (0..10_000)
                .filter(|&i| pattern(ranks, r, 0, i) != 0.0)
                .count();
            // ≈ 64/1000 · 4/5 of the elements.
            assert!((300..800).contains(&n), "rank {r}: {n}");
        }
        let v: Vec<f64> = (0..100).map(|i| pattern(2, 0, 0, i)).collect();
        assert!(v.iter().filter(|x| **x != 0.0).count() > 60);
        assert_ne!(pattern(2, 0, 0, 0), pattern(2, 1, 0, 0));
    }

    #[test]
    fn planted_error_is_counted() {
        let ranks = 4;
        let mut reduced: Vec<f64> = (0..1000).map(|i| expected_sum(ranks, 2, 10 + i)).collect();
        assert_eq!(count_wrong(reduced.iter().copied(), ranks, 2, 10), 0);
        reduced[123] += 1.0;
        reduced[7] = f64::NAN;
        assert_eq!(count_wrong(reduced.iter().copied(), ranks, 2, 10), 2);
    }

    /// A gather in rank order passes; two shards swapped (ranks 0 and 5)
    /// or a NaN are counted.
    #[test]
    fn gathered_known_answer() {
        let (n, shard, id) = (6u64, 7u64, 3u64);
        let good: Vec<f64> = (0..n)
            .flat_map(|r| (0..shard).map(move |i| gather_value(r, id, i)))
            .collect();
        assert_eq!(count_wrong_gathered(good.iter().copied(), shard, id), 0);
        let mut swapped = good.clone();
        for i in 0..shard as usize {
            swapped.swap(i, 5 * shard as usize + i);
        }
        assert_eq!(count_wrong_gathered(swapped, shard, id), 2 * shard);
        let mut nan = good;
        nan[9] = f64::NAN;
        assert_eq!(count_wrong_gathered(nan, shard, id), 1);
    }
}
