//! Parallelism patterns: `[parallel]` of the config and the rank layout.
//!
//! - `data = "ddp"` (default): every data-parallel rank holds the whole
//!   model; gradients are all-reduced in buckets (today's step).
//! - `data = "fsdp"` (ZeRO-3): every layer's parameters are sharded over
//!   the data-parallel ranks; each layer all-gathers its parameters before
//!   its forward and again before its backward, and reduce-scatters its
//!   gradients after its backward.
//! - `data = "hsdp"`: FSDP inside a node (the shard group), plus an
//!   all-reduce of each gradient shard across nodes (the replicate group).
//! - `tensor = t` (Megatron tensor parallelism): the GEMMs of a layer are
//!   split over `t` consecutive local ranks of one node.
//! - `expert = E` (expert parallelism, mixture-of-experts models): the
//!   routed experts of every MoE block are split over `E` consecutive
//!   ranks, `experts / E` each; tokens reach their experts by an
//!   all-to-all and come back by another. DDP only, without tensor
//!   parallelism (for now).
//!
//! Groups, for rank `r` with `p` ranks per node, `t = tensor` (ranks are
//! placed node by node, as mpirun and srun do by default):
//! - `tp`: the `t` ranks `t·⌊r/t⌋ …`, consecutive local ranks of a node;
//! - `dp_shard`: ranks with the same TP position that share parameter
//!   shards: all of them for FSDP, those of the same node for HSDP, only
//!   `r` itself for DDP;
//! - `dp_replicate`: ranks with the same TP position that hold the same
//!   parameters: all of them for DDP, the same local rank of every node for
//!   HSDP, only `r` for FSDP;
//! - `ep`: the `E` ranks `E·⌊r/E⌋ …` that split the experts;
//! - `dp_expert`: ranks with the same position in their `ep` group, which
//!   hold the same experts (their gradients are all-reduced there);
//! - `world`: every rank.
//!
//! The layout needs the number of ranks and ranks per node, known only to
//! the worker: [`Parallel::layout`] is the pure check it calls.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::config_error::ConfigError;
use crate::model::ModelShape;

/// How the data-parallel dimension treats parameters and gradients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataParallel {
    /// Replicated parameters, bucketed gradient all-reduce (PyTorch DDP).
    #[default]
    Ddp,
    /// Sharded parameters: per-layer all-gather and reduce-scatter (FSDP, ZeRO-3).
    Fsdp,
    /// FSDP inside a node, all-reduce of the shards across nodes.
    Hsdp,
}

impl DataParallel {
    /// The name used in configs and output.
    pub fn name(self) -> &'static str {
        match self {
            DataParallel::Ddp => "ddp",
            DataParallel::Fsdp => "fsdp",
            DataParallel::Hsdp => "hsdp",
        }
    }

    /// Whether parameters are sharded (FSDP or HSDP).
    pub fn is_sharded(self) -> bool {
        !matches!(self, DataParallel::Ddp)
    }
}

impl fmt::Display for DataParallel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A group of ranks a collective runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// The tensor-parallel group (consecutive local ranks of a node).
    Tp,
    /// The ranks that share parameter shards.
    DpShard,
    /// The ranks that hold the same parameters (or the same shard).
    DpReplicate,
    /// Every rank.
    World,
    /// The expert-parallel group: the ranks that split a MoE block's
    /// experts and exchange tokens by all-to-all.
    #[serde(rename = "ep")]
    Expert,
    /// The ranks that hold the same experts (same position in their
    /// expert-parallel group): expert gradients are all-reduced there.
    #[serde(rename = "dp_expert")]
    ExpertReplicate,
}

impl Group {
    /// The groups that get a communicator of their own, in a fixed order.
    pub const SPLIT: [Group; 5] = [
        Group::Tp,
        Group::DpShard,
        Group::DpReplicate,
        Group::Expert,
        Group::ExpertReplicate,
    ];

    /// The name used in labels and output.
    pub fn name(self) -> &'static str {
        match self {
            Group::Tp => "tp",
            Group::DpShard => "dp_shard",
            Group::DpReplicate => "dp_replicate",
            Group::World => "world",
            Group::Expert => "ep",
            Group::ExpertReplicate => "dp_expert",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Tensor-parallel sizes accepted.
pub const TENSOR_SIZES: [u64; 4] = [1, 2, 4, 8];

/// Most FSDP layers gathered ahead.
pub const MAX_PREFETCH: u64 = 64;

/// `[parallel]` as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParallelSection {
    /// `ddp` (default), `fsdp` or `hsdp`.
    pub data: Option<DataParallel>,
    /// Ranks of a tensor-parallel group: 1 (default), 2, 4 or 8; must
    /// divide the ranks per node and the model's heads, kv_heads and ffn.
    pub tensor: Option<u64>,
    /// FSDP/HSDP: layers whose all-gather is issued ahead of the layer
    /// computing now (default 1; 0 = no prefetch).
    pub prefetch: Option<u64>,
    /// Ranks of an expert-parallel group (default 1): each holds
    /// `model.experts / expert` of every MoE block's experts; must divide
    /// `model.experts` and the ranks.
    pub expert: Option<u64>,
}

/// Resolved `[parallel]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parallel {
    /// Data-parallel pattern.
    pub data: DataParallel,
    /// Tensor-parallel group size.
    pub tensor: u64,
    /// FSDP layers gathered ahead.
    pub prefetch: u64,
    /// Expert-parallel group size (1 in runs written before it existed).
    #[serde(default = "one")]
    pub expert: u64,
}

fn one() -> u64 {
    1
}

impl Default for Parallel {
    fn default() -> Self {
        Parallel {
            data: DataParallel::Ddp,
            tensor: 1,
            prefetch: 1,
            expert: 1,
        }
    }
}

fn invalid(file: &str, field: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        field: field.to_string(),
        message,
    }
}

impl ParallelSection {
    /// Fills in the defaults and checks the rules that need only the model:
    /// `tensor` is 1, 2, 4 or 8 and divides heads, kv_heads and ffn.
    pub fn resolve(&self, file: &str, model: &ModelShape) -> Result<Parallel, ConfigError> {
        let tensor = self.tensor.unwrap_or(1);
        if !TENSOR_SIZES.contains(&tensor) {
            return Err(invalid(
                file,
                "parallel.tensor",
                format!("parallel.tensor = {tensor} must be 1, 2, 4 or 8 (the ranks of a tensor-parallel group inside one node)"),
            ));
        }
        for (field, value) in [
            ("model.heads", model.heads),
            ("model.kv_heads", model.kv_heads),
            ("model.ffn", model.ffn),
        ] {
            if value % tensor != 0 {
                return Err(invalid(
                    file,
                    "parallel.tensor",
                    format!("parallel.tensor = {tensor} does not divide {field} = {value}: Megatron splits heads and the FFN evenly; choose a parallel.tensor that divides it"),
                ));
            }
        }
        let prefetch = self.prefetch.unwrap_or(1);
        if prefetch > MAX_PREFETCH {
            return Err(invalid(
                file,
                "parallel.prefetch",
                format!("parallel.prefetch = {prefetch} is out of range: it must be between 0 and {MAX_PREFETCH}"),
            ));
        }
        let data = self.data.unwrap_or_default();
        let expert = self.expert.unwrap_or(1);
        if expert == 0 || expert > crate::config::limits::MAX_EXPERTS {
            return Err(invalid(
                file,
                "parallel.expert",
                format!(
                    "parallel.expert = {expert} is out of range: it must be between 1 and {}",
                    crate::config::limits::MAX_EXPERTS
                ),
            ));
        }
        if expert > 1 {
            let why = if model.experts <= 1 {
                Some(format!("the model is dense (model.experts = {}): expert parallelism splits the experts of a mixture-of-experts model; set model.experts or remove parallel.expert", model.experts))
            } else if model.experts % expert != 0 {
                Some(format!("parallel.expert = {expert} does not divide model.experts = {}: every rank of an expert-parallel group holds the same number of experts; choose a divisor of {}", model.experts, model.experts))
            } else if tensor > 1 {
                Some(format!("parallel.expert = {expert} with parallel.tensor = {tensor}: expert and tensor parallelism together are not built yet; use one of them"))
            } else if data != DataParallel::Ddp {
                Some(format!("parallel.expert = {expert} with parallel.data = \"{data}\": expert parallelism runs with data = \"ddp\" only for now; remove one of them"))
            } else {
                None
            };
            if let Some(message) = why {
                return Err(invalid(file, "parallel.expert", message));
            }
        }
        Ok(Parallel {
            data,
            tensor,
            prefetch,
            expert,
        })
    }
}

/// A layout that cannot run on the ranks started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct LayoutError {
    /// The config field to change.
    pub field: String,
    /// What is wrong and the fix.
    pub message: String,
}

/// The parallel layout of a run: group sizes for its ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Data-parallel pattern.
    pub data: DataParallel,
    /// Tensor-parallel group size.
    pub tensor: u64,
    /// Ranks of a `dp_shard` group.
    pub shard: u64,
    /// Ranks of a `dp_replicate` group.
    pub replicate: u64,
    /// FSDP layers gathered ahead.
    pub prefetch: u64,
    /// Ranks of an expert-parallel (`ep`) group (1 in runs written before
    /// it existed).
    #[serde(default = "one")]
    pub expert: u64,
    /// Ranks in the run.
    pub ranks: u64,
    /// Ranks per node.
    pub ranks_per_node: u64,
}

impl Parallel {
    /// Whether this is the default (DDP, no tensor parallelism, prefetch 1).
    pub fn is_default(&self) -> bool {
        *self == Parallel::default()
    }

    /// The layout on `ranks` ranks, `ranks_per_node` on each node; errors
    /// name the field and the fix.
    pub fn layout(&self, ranks: u64, ranks_per_node: u64) -> Result<Layout, LayoutError> {
        let err = |field: &str, message: String| LayoutError {
            field: field.to_string(),
            message,
        };
        if ranks == 0 || ranks_per_node == 0 || ranks % ranks_per_node != 0 {
            return Err(err(
                "parallel",
                format!("the {ranks} ranks are not spread evenly over the nodes ({ranks_per_node} on the first): start the same number of ranks on every host"),
            ));
        }
        let t = self.tensor;
        if ranks_per_node % t != 0 {
            return Err(err(
                "parallel.tensor",
                format!("parallel.tensor = {t} does not divide the {ranks_per_node} ranks per node: a tensor-parallel group lives inside one node; set parallel.tensor to a divisor of {ranks_per_node} or start more ranks per node"),
            ));
        }
        let e = self.expert.max(1);
        if ranks % e != 0 {
            return Err(err(
                "parallel.expert",
                format!("parallel.expert = {e} does not divide the {ranks} ranks: every rank belongs to one expert-parallel group of {e}; start a multiple of {e} ranks or choose another parallel.expert"),
            ));
        }
        let nodes = ranks / ranks_per_node;
        let dp = ranks / t;
        let (shard, replicate) = match self.data {
            DataParallel::Ddp => (1, dp),
            DataParallel::Fsdp => (dp, 1),
            DataParallel::Hsdp => {
                if nodes < 2 {
                    return Err(err(
                        "parallel.data",
                        format!("parallel.data = \"hsdp\" shards inside a node and replicates across nodes, so it needs at least 2 nodes; this run has {nodes} node with {ranks} ranks: use data = \"fsdp\" on one node, or start ranks on more hosts"),
                    ));
                }
                (ranks_per_node / t, nodes)
            }
        };
        Ok(Layout {
            data: self.data,
            tensor: t,
            shard,
            replicate,
            prefetch: self.prefetch,
            expert: e,
            ranks,
            ranks_per_node,
        })
    }
}

impl Layout {
    /// One rank, DDP, no tensor parallelism: the layout of a plan built
    /// without knowing the ranks.
    pub fn single() -> Layout {
        Layout {
            data: DataParallel::Ddp,
            tensor: 1,
            shard: 1,
            replicate: 1,
            prefetch: 1,
            expert: 1,
            ranks: 1,
            ranks_per_node: 1,
        }
    }

    /// Ranks in a group.
    pub fn group_size(&self, g: Group) -> u64 {
        match g {
            Group::Tp => self.tensor,
            Group::DpShard => self.shard,
            Group::DpReplicate => self.replicate,
            Group::World => self.ranks,
            Group::Expert => self.expert.max(1),
            Group::ExpertReplicate => self.ranks / self.expert.max(1),
        }
    }

    /// The colour of `rank`'s group (ranks of one colour form the group,
    /// ordered by world rank) and `rank`'s position in it.
    pub fn colour_and_position(&self, g: Group, rank: u64) -> (u64, u64) {
        let t = self.tensor;
        let p = self.ranks_per_node;
        let e = self.expert.max(1);
        match (g, self.data) {
            (Group::World, _) => (0, rank),
            (Group::Expert, _) => (rank / e, rank % e),
            (Group::ExpertReplicate, _) => (rank % e, rank / e),
            (Group::Tp, _) => (rank / t, rank % t),
            (Group::DpShard, DataParallel::Ddp) | (Group::DpReplicate, DataParallel::Fsdp) => {
                (rank, 0)
            }
            (Group::DpShard, DataParallel::Fsdp) | (Group::DpReplicate, DataParallel::Ddp) => {
                (rank % t, rank / t)
            }
            (Group::DpShard, DataParallel::Hsdp) => ((rank / p) * t + rank % t, (rank % p) / t),
            (Group::DpReplicate, DataParallel::Hsdp) => (rank % p, rank / p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    fn parallel(text: &str) -> Result<Parallel, ConfigError> {
        parse_config(
            &format!("[model]\npreset = \"llama3-8b\"\n[parallel]\n{text}"),
            "p.toml",
        )
        .map(|c| c.parallel)
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(parallel("").unwrap(), Parallel::default());
        let p = parallel("data = \"hsdp\"\ntensor = 4\nprefetch = 2\n").unwrap();
        assert_eq!((p.data, p.tensor, p.prefetch), (DataParallel::Hsdp, 4, 2));
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = parallel("tensor = 3\n").unwrap_err();
        assert_eq!(e.field(), Some("parallel.tensor"));
        assert!(e.to_string().contains("1, 2, 4 or 8"), "{e}");
        // llama3-8b has 8 kv heads: tensor 8 divides, a 6-kv-head model does not.
        assert!(parallel("tensor = 8\n").is_ok());
        let e = parse_config(
            "[model]\npreset = \"llama3-8b\"\nkv_heads = 2\n[parallel]\ntensor = 4\n",
            "p.toml",
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("parallel.tensor"));
        assert!(e.to_string().contains("model.kv_heads = 2"), "{e}");
        let e = parallel("prefetch = 65\n").unwrap_err();
        assert_eq!(e.field(), Some("parallel.prefetch"));
        let e = parallel("data = \"zero\"\n").unwrap_err().to_string();
        assert!(e.contains("fsdp") && e.contains("p.toml:4:"), "{e}");
        let e = parallel("pipeline = 2\n").unwrap_err().to_string();
        assert!(e.contains("`tensor`"), "{e}");
    }

    #[test]
    fn layout_rules() {
        let p = |data, tensor| Parallel {
            data,
            tensor,
            prefetch: 1,
            expert: 1,
        };
        let e = p(DataParallel::Ddp, 4).layout(4, 2).unwrap_err();
        assert_eq!(e.field, "parallel.tensor");
        assert!(e.message.contains("2 ranks per node"), "{e}");
        let e = p(DataParallel::Hsdp, 1).layout(4, 4).unwrap_err();
        assert_eq!(e.field, "parallel.data");
        assert!(e.message.contains("at least 2 nodes"), "{e}");
        assert!(p(DataParallel::Fsdp, 1).layout(5, 2).is_err());
        let l = p(DataParallel::Hsdp, 2).layout(8, 4).unwrap();
        assert_eq!((l.tensor, l.shard, l.replicate), (2, 2, 2));
        let l = p(DataParallel::Fsdp, 2).layout(8, 4).unwrap();
        assert_eq!((l.shard, l.replicate), (4, 1));
        let l = p(DataParallel::Ddp, 1).layout(3, 3).unwrap();
        assert_eq!((l.shard, l.replicate), (1, 3));
    }

    /// Every group partitions the ranks into groups of the right size, with
    /// positions 0..size, and a TP group never crosses a node.
    #[test]
    fn groups_partition_the_ranks() {
        for (data, t, e) in [
            (DataParallel::Ddp, 1, 1),
            (DataParallel::Ddp, 2, 1),
            (DataParallel::Ddp, 4, 1),
            (DataParallel::Fsdp, 1, 1),
            (DataParallel::Fsdp, 2, 1),
            (DataParallel::Fsdp, 4, 1),
            (DataParallel::Hsdp, 1, 1),
            (DataParallel::Hsdp, 2, 1),
            (DataParallel::Hsdp, 4, 1),
            (DataParallel::Ddp, 1, 4),
            (DataParallel::Ddp, 1, 16),
        ] {
            {
                let Ok(l) = (Parallel {
                    data,
                    tensor: t,
                    prefetch: 1,
                    expert: e,
                })
                .layout(16, 8) else {
                    panic!("{data} t={t}")
                };
                for g in [
                    Group::Tp,
                    Group::DpShard,
                    Group::DpReplicate,
                    Group::World,
                    Group::Expert,
                    Group::ExpertReplicate,
                ] {
                    let mut groups = std::collections::BTreeMap::<u64, Vec<u64>>::new();
                    for r in 0..16 {
                        let (c, pos) = l.colour_and_position(g, r);
                        let members = groups.entry(c).or_default();
                        assert_eq!(pos, members.len() as u64, "{data} t={t} {g} r={r}");
                        members.push(r);
                    }
                    for m in groups.values() {
                        assert_eq!(m.len() as u64, l.group_size(g), "{data} t={t} {g}");
                        if g == Group::Tp {
                            assert_eq!(m[0] / 8, m[m.len() - 1] / 8);
                        }
                    }
                }
                // tp × shard × replicate = world = ep × dp_expert.
                assert_eq!(l.tensor * l.shard * l.replicate, 16);
                assert_eq!(
                    l.group_size(Group::Expert) * l.group_size(Group::ExpertReplicate),
                    16
                );
            }
        }
    }

    #[test]
    fn expert_parallel_rules_name_the_field() {
        let moe = |text: &str| {
            parse_config(
                &format!("[model]\npreset = \"tiny\"\nexperts = 8\ntop_k = 2\n[parallel]\n{text}"),
                "p.toml",
            )
            .map(|c| c.parallel)
        };
        assert_eq!(moe("expert = 4\n").unwrap().expert, 4);
        assert_eq!(moe("").unwrap().expert, 1);
        for (text, says) in [
            ("expert = 3\n", "does not divide model.experts = 8"),
            ("expert = 0\n", "out of range"),
            ("expert = 2\ntensor = 2\n", "tensor"),
            ("expert = 2\ndata = \"fsdp\"\n", "ddp"),
        ] {
            let e = moe(text).unwrap_err();
            assert_eq!(e.field(), Some("parallel.expert"), "{text}");
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
        let e = parallel("expert = 2\n").unwrap_err();
        assert!(e.to_string().contains("dense"), "{e}");
        // The layout: the group must divide the ranks.
        let p = moe("expert = 4\n").unwrap();
        let e = p.layout(6, 6).unwrap_err();
        assert_eq!(e.field, "parallel.expert");
        assert!(e.message.contains("6 ranks"), "{e}");
        let l = p.layout(8, 4).unwrap();
        assert_eq!(l.group_size(Group::Expert), 4);
        assert_eq!(l.group_size(Group::ExpertReplicate), 2);
        // Ranks 0–3 and 4–7 split the experts; 1 and 5 hold the same ones.
        assert_eq!(l.colour_and_position(Group::Expert, 5), (1, 1));
        assert_eq!(l.colour_and_position(Group::ExpertReplicate, 5), (1, 1));
        assert_eq!(l.colour_and_position(Group::ExpertReplicate, 1), (1, 0));
    }
}
