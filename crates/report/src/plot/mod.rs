//! The two plots, written as SVG by hand (no plotting library): every bar
//! and point carries a `<title>` (hover text), colours and labels are ours,
//! and the same markup is saved as timeline.svg / ranks.svg and inlined in
//! report.html.
//!
//! - **Timeline**: the serialized and the overlapped step of one rank, one
//!   above the other on the same time axis: GEMMs on the compute lane
//!   (coloured by kind), DDP's all-reduces on the comm lane (labelled with
//!   their bucket), every other collective on a lane of its group and kind
//!   ("tp all-reduce", "dp_shard all-gather", "dp_shard reduce-scatter":
//!   FSDP/HSDP/TP collectives of different groups overlap in time), the
//!   exposed part of communication (a collective running while no GEMM
//!   does) shaded, and in the overlapped step a mark where each
//!   bucket became ready. Drawn for the slowest rank and for the median rank
//!   ([`Report::timelines`](crate::analysis::Report::timelines)); lanes without ops are left out.
//! - **Ranks**: each rank's rate (or step time, comm-only runs) grouped and
//!   coloured by node, against the median and the straggler band;
//!   stragglers ringed in red and ranks with wrong all-reduce elements
//!   crossed, both labelled; the legend beside the data. Past
//!   [`RANK_PLOT_LIMIT`] ranks, one min–median–max bar per node instead, so
//!   that thousands of ranks stay readable and small.
//!
//! Each plot has a file of its own (`plot/timeline.rs`, `plot/ranks.rs`);
//! the SVG they share (root element, escaping, ticks) is in `svg.rs`.

mod projection;
mod ranks;
mod timeline;

pub use crate::svg::{nice_ticks, SvgTarget};
pub use projection::projection_svg;
pub use ranks::ranks_svg;
pub use timeline::{comm_lane, exposed_intervals, timeline_svg};

/// Above this many ranks, the ranks plot aggregates per node.
pub const RANK_PLOT_LIMIT: usize = 512;
