//! The CPU backend: streams are threads, events are timestamps.
//!
//! Each stream is a thread draining a FIFO of tasks, so ops on one stream run
//! in order and the two streams run concurrently, as on a GPU. An event is a
//! completion flag with a monotonic timestamp, set by the stream thread when
//! it reaches the event's position; waiting on an event is a task that
//! blocks the waiting stream's thread until the flag is set.
//!
//! GEMMs run with the `gemm` crate (x86-v4 kernels where the CPU has
//! AVX-512) on the compute thread, using a private rayon pool of
//! `gemm_threads` threads. All-reduces run on the comm thread through a
//! [`GroupComm`] over host buffers: MPI in the worker
//! ([`crate::mpi_comm::MpiGroup`]), an in-process single rank in unit
//! tests ([`LocalGroup`]).

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mfubench_core::check;
use mfubench_core::config::Dtype;
use mfubench_core::plan::StepPlan;

use crate::backend::{Backend, BackendError, Communicator, Compute, StreamId, Streams};
use crate::group::GroupComm;
use crate::mpi_comm::MpiGroup;
use mfubench_core::metrics::Collective;
use mfubench_core::parallel::Group;

pub use crate::host_buf::HostBuf;

/// A group over host buffers, as the CPU backend runs its all-reduces on.
pub trait HostGroup: GroupComm<Buf = HostBuf> + 'static {
    /// The group of every rank of the job, for the backend opening on
    /// `rank` (MPI: its own duplicate of the world communicator, so that its
    /// collectives never interleave with the main thread's).
    fn world(rank: &crate::rank::Rank) -> Self;
}

impl HostGroup for MpiGroup {
    fn world(rank: &crate::rank::Rank) -> MpiGroup {
        use mpi::topology::Communicator;
        MpiGroup::new(rank.world.duplicate())
    }
}

/// A one-rank group (copies), for unit tests of the schedule only.
#[derive(Debug, Default)]
pub struct LocalGroup;

impl LocalGroup {
    fn copy(send: &HostBuf, recv: &mut HostBuf, count: usize) -> Result<(), BackendError> {
        crate::group::check_lengths("local group", send.len(), count, recv.len(), count)?;
        match (send, recv) {
            (HostBuf::F32(s), HostBuf::F32(r)) => r[..count].copy_from_slice(&s[..count]),
            (HostBuf::F64(s), HostBuf::F64(r)) => r[..count].copy_from_slice(&s[..count]),
            _ => {
                return Err(BackendError::Failed(
                    "local group: the send and receive buffers differ in dtype".into(),
                ))
            }
        }
        Ok(())
    }
}

impl HostGroup for LocalGroup {
    /// One rank, whatever the job: unit tests only.
    fn world(_: &crate::rank::Rank) -> LocalGroup {
        LocalGroup
    }
}

impl GroupComm for LocalGroup {
    type Buf = HostBuf;
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn split(&self, color: Option<u32>, _key: u32) -> Result<Option<LocalGroup>, BackendError> {
        Ok(color.map(|_| LocalGroup))
    }
    fn all_reduce_sum(&self, s: &HostBuf, r: &mut HostBuf, n: usize) -> Result<(), BackendError> {
        LocalGroup::copy(s, r, n)
    }
    fn all_gather(&self, s: &HostBuf, r: &mut HostBuf, n: usize) -> Result<(), BackendError> {
        LocalGroup::copy(s, r, n)
    }
    fn reduce_scatter_sum(
        &self,
        s: &HostBuf,
        r: &mut HostBuf,
        n: usize,
    ) -> Result<(), BackendError> {
        LocalGroup::copy(s, r, n)
    }
    fn send_recv(
        &self,
        peer: usize,
        s: &HostBuf,
        r: &mut HostBuf,
        n: usize,
    ) -> Result<(), BackendError> {
        if peer != 0 {
            return Err(BackendError::Failed(format!(
                "send_recv: peer {peer} is not in a group of 1"
            )));
        }
        LocalGroup::copy(s, r, n)
    }
    fn all_to_all_v(
        &self,
        s: &HostBuf,
        send_counts: &[usize],
        r: &mut HostBuf,
        recv_counts: &[usize],
    ) -> Result<(), BackendError> {
        let (n, _) = crate::group::check_all_to_all(1, s.len(), send_counts, r.len(), recv_counts)?;
        LocalGroup::copy(s, r, n)
    }
    fn synchronize(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct EventState {
    at: Mutex<Option<Instant>>,
    cv: Condvar,
}

/// A CPU event: set by a stream thread with the time it was reached.
#[derive(Debug, Clone, Default)]
pub struct CpuEvent(Arc<EventState>);

impl CpuEvent {
    fn set(&self) {
        let mut at = self.0.at.lock().unwrap_or_else(|e| e.into_inner());
        *at = Some(Instant::now());
        self.0.cv.notify_all();
    }

    fn reset(&self) {
        *self.0.at.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn wait(&self, timeout: Option<Duration>) -> Option<Instant> {
        let guard = self.0.at.lock().unwrap_or_else(|e| e.into_inner());
        match timeout {
            None => *self
                .0
                .cv
                .wait_while(guard, |t| t.is_none())
                .unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                *self
                    .0
                    .cv
                    .wait_timeout_while(guard, d, |t| t.is_none())
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        }
    }

    fn time(&self) -> Option<Instant> {
        *self.0.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Task = Box<dyn FnOnce() + Send + 'static>;

/// A stream: a thread running queued tasks in order.
struct CpuStream {
    tx: Option<Sender<Task>>,
    thread: Option<JoinHandle<()>>,
}

impl CpuStream {
    fn spawn(name: &str, init: impl FnOnce() + Send + 'static) -> Result<CpuStream, BackendError> {
        let (tx, rx) = channel::<Task>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                init();
                while let Ok(task) = rx.recv() {
                    task();
                }
            })
            .map_err(|e| {
                BackendError::Failed(format!("cannot start the {name} stream thread: {e}"))
            })?;
        Ok(CpuStream {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn push(&self, task: Task) -> Result<(), BackendError> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(task).ok())
            .ok_or_else(|| BackendError::Failed("a stream thread has stopped".into()))
    }
}

impl Drop for CpuStream {
    fn drop(&mut self) {
        // Closing the channel ends the thread once its queue is drained.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Operand buffers shared by all GEMMs (ops run one at a time on the
/// compute stream, so one set sized for the largest op suffices).
struct GemmBuffers {
    a: HostBuf,
    b: HostBuf,
    c: HostBuf,
}

/// Send and receive buffers of every bucket.
struct BucketBuffers {
    send: Vec<HostBuf>,
    recv: Vec<HostBuf>,
}

/// Buffers of one collective other than a bucket, with what its check
/// needs.
struct CollBuf {
    kind: Collective,
    /// This rank's position in the collective's group, and the group's size.
    rank: u64,
    size: u64,
    /// Elements of one rank's shard (all-gather, reduce-scatter).
    shard: usize,
    /// The id its check pattern is keyed by.
    id: u64,
    /// All-to-all: elements sent to (and received from) each rank.
    counts: Vec<usize>,
    send: HostBuf,
    recv: HostBuf,
}

impl CollBuf {
    fn wrong(&self) -> u64 {
        let values = (0..self.recv.len()).map(|i| self.recv.get(i));
        if self.kind == Collective::AllToAll {
            let counts: Vec<u64> = self.counts.iter().map(|&c| c as u64).collect();
            return check::count_wrong_all_to_all(values, &counts, self.rank, self.id, 0);
        }
        check::count_wrong_result(
            self.kind,
            values,
            self.size,
            self.rank,
            self.shard as u64,
            self.id,
            0,
        )
    }
}

/// The check pattern id of collective `index` (apart from the buckets').
fn collective_id(index: usize) -> u64 {
    (1 << 32) + index as u64
}

/// The CPU backend; its gradient all-reduces run on the group `G` (MPI in
/// the worker).
pub struct CpuBackend<G: HostGroup = MpiGroup> {
    compute: CpuStream,
    comm: CpuStream,
    threads: usize,
    dtype: Dtype,
    grad_dtype: Dtype,
    plan: Arc<StepPlan>,
    gemm: Arc<Mutex<Option<GemmBuffers>>>,
    buckets: Arc<Mutex<Option<BucketBuffers>>>,
    reducer: Arc<G>,
    /// One stream and communicator per group of the plan's collectives
    /// (TP, FSDP shard, HSDP replicate): each stream's thread is the only
    /// user of its communicator.
    groups: Vec<(StreamId, CpuStream, Arc<G>)>,
    /// Buffers of the plan's collectives by index (None for the buckets,
    /// which have their own); one lock each, so that group streams never
    /// wait for each other's buffers.
    colls: Arc<Vec<Option<Mutex<CollBuf>>>>,
    /// First failure of a queued op; raised by the next `sync_event`.
    failure: Arc<Mutex<Option<String>>>,
}

/// xorshift64*: reproducible, cheap, non-zero pseudo-random data.
fn random_fill(seed: u64) -> impl FnMut(usize) -> f64 {
    let mut s = seed | 1;
    move |_| {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let x = (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        // In [-1, -1/64] ∪ [1/64, 1]: never zero, never denormal.
        let v = x * 2.0 - 1.0;
        if v.abs() >= 1.0 / 64.0 {
            v
        } else if v < 0.0 {
            -1.0 / 64.0
        } else {
            1.0 / 64.0
        }
    }
}

impl<G: HostGroup> CpuBackend<G> {
    /// Starts the two stream threads. `threads` GEMM threads run on a
    /// private pool owned by the compute stream.
    pub fn new(
        plan: Arc<StepPlan>,
        dtype: Dtype,
        grad_dtype: Dtype,
        threads: usize,
        reducer: Arc<G>,
    ) -> Result<CpuBackend<G>, BackendError> {
        for (what, d) in [("run.dtype", dtype), ("run.grad_dtype", grad_dtype)] {
            if !matches!(d, Dtype::F32 | Dtype::F64) {
                return Err(BackendError::Unavailable(format!(
                    "{what} = \"{d}\": the cpu backend supports f32 and f64"
                )));
            }
        }
        let threads = threads.max(1);
        let pool = if threads > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("gemm-{i}"))
                    .build()
                    .map_err(|e| {
                        BackendError::Failed(format!("cannot start {threads} GEMM threads: {e}"))
                    })?,
            )
        } else {
            None
        };
        let compute = CpuStream::spawn("compute-stream", move || {
            POOL.with(|p| *p.lock().unwrap_or_else(|e| e.into_inner()) = pool);
        })?;
        let comm = CpuStream::spawn("comm-stream", || {})?;
        Ok(CpuBackend {
            compute,
            comm,
            threads,
            dtype,
            grad_dtype,
            plan,
            gemm: Arc::new(Mutex::new(None)),
            buckets: Arc::new(Mutex::new(None)),
            reducer,
            groups: Vec::new(),
            colls: Arc::new(Vec::new()),
            failure: Arc::new(Mutex::new(None)),
        })
    }

    /// Adds a stream with a communicator of its own for each group stream
    /// (see [`StreamId::Group`], [`StreamId::Reduce`]).
    pub fn with_groups(mut self, groups: Vec<(StreamId, Arc<G>)>) -> Result<Self, BackendError> {
        for (s, comm) in groups {
            let stream = CpuStream::spawn(&format!("{} stream", s.name()), || {})?;
            self.groups.push((s, stream, comm));
        }
        Ok(self)
    }

    fn lane(&self, s: StreamId) -> Result<&(StreamId, CpuStream, Arc<G>), BackendError> {
        self.groups.iter().find(|(x, _, _)| *x == s).ok_or_else(|| {
            BackendError::Failed(format!(
                "the backend has no communicator for the {} stream",
                s.name()
            ))
        })
    }

    /// GEMM threads per rank.
    pub fn threads(&self) -> usize {
        self.threads
    }

    fn stream(&self, s: StreamId) -> Result<&CpuStream, BackendError> {
        match s {
            StreamId::Compute => Ok(&self.compute),
            StreamId::Comm => Ok(&self.comm),
            StreamId::Group(_) | StreamId::Reduce(_) => Ok(&self.lane(s)?.1),
        }
    }
}

impl CpuBackend {
    /// Bytes the plan's buffers will take on this backend.
    pub fn memory_bytes(plan: &StepPlan, dtype: Dtype, grad_dtype: Dtype) -> u64 {
        let (a, b, c) = plan.max_operand_elements();
        let coll_elements: u64 = plan
            .collectives
            .iter()
            .filter(|c| c.bucket.is_none())
            .map(|c| c.elements + c.shard_elements())
            .sum();
        (a + b + c) * dtype.size_bytes()
            + 2 * plan.allreduce_bytes() / plan.grad_bytes.max(1) * grad_dtype.size_bytes()
            + coll_elements * grad_dtype.size_bytes()
    }
}

thread_local! {
    /// The compute stream thread's GEMM pool (None = single-threaded).
    static POOL: Mutex<Option<rayon::ThreadPool>> = const { Mutex::new(None) };
}

/// Runs `C = op(A)·op(B)` for every batch entry of an op, row-major, with
/// `threads` threads of the current rayon pool (1 = on the calling thread).
/// Public so that the benchmark's bare loop makes exactly the same calls.
pub fn run_gemm<T: 'static + Copy + Default>(
    op: &mfubench_core::plan::GemmOp,
    a: &[T],
    b: &[T],
    c: &mut [T],
    one: T,
    threads: usize,
) {
    let (m, n, k) = (op.m as usize, op.n as usize, op.k as usize);
    let (sa, sb, sc) = (m * k, k * n, m * n);
    // Strides (column stride, row stride) of row-major storage; a transposed
    // operand is stored as its transpose, so the two strides swap.
    let (a_cs, a_rs) = if op.trans_a {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (b_cs, b_rs) = if op.trans_b {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    for e in 0..op.batch as usize {
        let (ap, bp) = (&a[e * sa..(e + 1) * sa], &b[e * sb..(e + 1) * sb]);
        let cp = &mut c[e * sc..(e + 1) * sc];
        // SAFETY: the slices hold exactly m·k, k·n and m·n elements, and the
        // strides above address only elements inside them (max index
        // (m−1)·rs + (k−1)·cs < m·k, and likewise for B and C). C does not
        // alias A or B (distinct buffers), and read_dst = false so C's
        // previous contents are never read.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                cp.as_mut_ptr(),
                1,
                n as isize,
                false,
                ap.as_ptr(),
                a_cs,
                a_rs,
                bp.as_ptr(),
                b_cs,
                b_rs,
                T::default(),
                one,
                false,
                false,
                false,
                par,
            );
        }
    }
}

impl<G: HostGroup> Streams for CpuBackend<G> {
    type Event = CpuEvent;

    fn new_event(&self) -> Result<CpuEvent, BackendError> {
        Ok(CpuEvent::default())
    }

    fn record(&self, stream: StreamId, event: &CpuEvent) -> Result<(), BackendError> {
        event.reset();
        let e = event.clone();
        self.stream(stream)?.push(Box::new(move || e.set()))
    }

    fn wait(&self, stream: StreamId, event: &CpuEvent) -> Result<(), BackendError> {
        let e = event.clone();
        self.stream(stream)?.push(Box::new(move || {
            e.wait(None);
        }))
    }

    fn sync_event(&self, event: &CpuEvent, timeout: Duration) -> Result<bool, BackendError> {
        let done = event.wait(Some(timeout)).is_some();
        if let Some(e) = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(BackendError::Failed(e));
        }
        Ok(done)
    }

    fn elapsed_s(&self, from: &CpuEvent, to: &CpuEvent) -> Result<f64, BackendError> {
        match (from.time(), to.time()) {
            (Some(a), Some(b)) if b >= a => Ok((b - a).as_secs_f64()),
            (Some(a), Some(b)) => Ok(-(a - b).as_secs_f64()),
            _ => Err(BackendError::Failed(
                "elapsed time of an event that has not completed".into(),
            )),
        }
    }
}

impl<G: HostGroup> Compute for CpuBackend<G> {
    fn allocate_gemms(&mut self, plan: &StepPlan) -> Result<(), BackendError> {
        let (a, b, c) = plan.max_operand_elements();
        let buffers = GemmBuffers {
            a: HostBuf::filled(self.dtype, a as usize, random_fill(0x9e37_79b9_7f4a_7c15))?,
            b: HostBuf::filled(self.dtype, b as usize, random_fill(0xd1b5_4a32_d192_ed03))?,
            c: HostBuf::filled(self.dtype, c as usize, random_fill(0x8cb9_2ba7_2f3d_8dd7))?,
        };
        *self.gemm.lock().unwrap_or_else(|e| e.into_inner()) = Some(buffers);
        Ok(())
    }

    fn gemm(&self, stream: StreamId, op: usize) -> Result<(), BackendError> {
        let plan = self.plan.clone();
        let bufs = self.gemm.clone();
        let threads = self.threads;
        if op >= plan.ops.len() {
            return Err(BackendError::Failed(format!("op {op} is not in the plan")));
        }
        self.stream(stream)?.push(Box::new(move || {
            let op = &plan.ops[op];
            let mut guard = bufs.lock().unwrap_or_else(|e| e.into_inner());
            let Some(g) = guard.as_mut() else { return };
            let run = |g: &mut GemmBuffers| match (&g.a, &g.b, &mut g.c) {
                (HostBuf::F32(a), HostBuf::F32(b), HostBuf::F32(c)) => {
                    run_gemm(op, a, b, c, 1.0f32, threads)
                }
                (HostBuf::F64(a), HostBuf::F64(b), HostBuf::F64(c)) => {
                    run_gemm(op, a, b, c, 1.0f64, threads)
                }
                _ => {}
            };
            POOL.with(
                |p| match p.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    Some(pool) => pool.install(|| run(g)),
                    None => run(g),
                },
            );
        }))
    }
}

impl<G: HostGroup> Communicator for CpuBackend<G> {
    fn allocate_buckets(&mut self, plan: &StepPlan) -> Result<(), BackendError> {
        let (rank, ranks) = (self.reducer.rank() as u64, self.reducer.size() as u64);
        let mut send = Vec::with_capacity(plan.buckets.len());
        let mut recv = Vec::with_capacity(plan.buckets.len());
        for b in &plan.buckets {
            let n = b.elements as usize;
            let bi = b.index as u64;
            send.push(HostBuf::filled(self.grad_dtype, n, |i| {
                check::pattern(ranks, rank, bi, i as u64)
            })?);
            recv.push(HostBuf::filled(self.grad_dtype, n, |_| f64::NAN)?);
        }
        *self.buckets.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(BucketBuffers { send, recv });
        let mut colls = Vec::with_capacity(plan.collectives.len());
        for (ci, c) in plan.collectives.iter().enumerate() {
            if c.bucket.is_some() {
                colls.push(None);
                continue;
            }
            let comm = &self.lane(crate::schedule::stream_of(c))?.2;
            let (rank, size) = (comm.rank() as u64, comm.size() as u64);
            if size != c.group_size {
                return Err(BackendError::Failed(format!(
                    "the {} group has {size} ranks, the plan expects {}",
                    c.group, c.group_size
                )));
            }
            let id = collective_id(ci);
            let (full, shard) = (c.elements as usize, c.shard_elements() as usize);
            let g = self.grad_dtype;
            let (send_n, recv_n) = match c.kind {
                Collective::AllGather => (shard, full),
                Collective::ReduceScatter => (full, shard),
                Collective::AllReduce | Collective::SendRecv | Collective::AllToAll => (full, full),
            };
            let peer_counts = c.peer_counts(rank);
            let send = HostBuf::filled(g, send_n, |i| match c.kind {
                Collective::AllToAll => {
                    check::all_to_all_send_value(&peer_counts, rank, id, i as u64)
                }
                _ => check::send_value(c.kind, size, rank, id, i as u64),
            })?;
            let recv = HostBuf::filled(g, recv_n, |_| f64::NAN)?;
            colls.push(Some(Mutex::new(CollBuf {
                kind: c.kind,
                rank,
                size,
                shard,
                id,
                counts: peer_counts.iter().map(|&x| x as usize).collect(),
                send,
                recv,
            })));
        }
        self.colls = Arc::new(colls);
        Ok(())
    }

    fn collective(&self, stream: StreamId, index: usize) -> Result<(), BackendError> {
        let Some(c) = self.plan.collectives.get(index) else {
            return Err(BackendError::Failed(format!(
                "collective {index} is not in the plan"
            )));
        };
        // The communicator of the stream it runs on (each is used by that
        // stream's thread only).
        let comm = self.lane(stream)?.2.clone();
        let colls = self.colls.clone();
        let failure = self.failure.clone();
        let label = c.label();
        self.stream(stream)?.push(Box::new(move || {
            let Some(Some(m)) = colls.get(index) else {
                return;
            };
            let mut guard = m.lock().unwrap_or_else(|e| e.into_inner());
            let b = &mut *guard;
            let res = match b.kind {
                Collective::AllReduce => comm.all_reduce_sum(&b.send, &mut b.recv, b.send.len()),
                Collective::AllGather => comm.all_gather(&b.send, &mut b.recv, b.shard),
                Collective::ReduceScatter => comm.reduce_scatter_sum(&b.send, &mut b.recv, b.shard),
                // The counts are symmetric: what goes to p comes from p.
                Collective::AllToAll => {
                    comm.all_to_all_v(&b.send, &b.counts, &mut b.recv, &b.counts)
                }
                Collective::SendRecv => Err(BackendError::Failed(
                    "send/recv is not a step collective".into(),
                )),
            };
            if let Err(e) = res {
                let mut f = failure.lock().unwrap_or_else(|e| e.into_inner());
                f.get_or_insert(format!("{label} failed: {e}"));
            }
        }))
    }

    fn all_reduce(&self, stream: StreamId, bucket: usize) -> Result<(), BackendError> {
        let bufs = self.buckets.clone();
        let reducer = self.reducer.clone();
        let failure = self.failure.clone();
        self.stream(stream)?.push(Box::new(move || {
            let mut guard = bufs.lock().unwrap_or_else(|e| e.into_inner());
            let Some(b) = guard.as_mut() else { return };
            if let (Some(send), Some(recv)) = (b.send.get(bucket), b.recv.get_mut(bucket)) {
                if let Err(e) = reducer.all_reduce_sum(send, recv, send.len()) {
                    // The events after it still complete; the failure is
                    // raised by the next sync so the step is not recorded.
                    let mut f = failure.lock().unwrap_or_else(|e| e.into_inner());
                    f.get_or_insert(format!("all-reduce of bucket {bucket} failed: {e}"));
                }
            }
        }))
    }

    fn prepare_check(&self) -> Result<(), BackendError> {
        if let Some(b) = self
            .buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            b.recv.iter_mut().for_each(HostBuf::fill_nan);
        }
        for m in self.colls.iter().flatten() {
            m.lock().unwrap_or_else(|e| e.into_inner()).recv.fill_nan();
        }
        Ok(())
    }

    fn count_wrong(&self) -> Result<u64, BackendError> {
        let guard = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(b) = guard.as_ref() else {
            return Ok(0);
        };
        let ranks = self.reducer.size() as u64;
        let buckets: u64 = b
            .recv
            .iter()
            .enumerate()
            .map(|(bi, r)| check::count_wrong((0..r.len()).map(|i| r.get(i)), ranks, bi as u64, 0))
            .sum();
        let colls: u64 = self
            .colls
            .iter()
            .flatten()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).wrong())
            .sum();
        Ok(buckets + colls)
    }

    fn corrupt_one_element(&self) -> Result<(), BackendError> {
        if let Some(b) = self
            .buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            if let Some(r) = b.recv.iter_mut().find(|r| !r.is_empty()) {
                let i = r.len() / 2;
                r.add(i, 1.0);
                return Ok(());
            }
        }
        if let Some(m) = self.colls.iter().flatten().next() {
            let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
            let i = b.recv.len() / 2;
            b.recv.add(i, 1.0);
        }
        Ok(())
    }
}

impl<G: HostGroup> Backend for CpuBackend<G> {
    /// GEMM threads: `run.gemm_threads`, else the host's cores divided
    /// among the ranks on it. The plan must fit in the host's available
    /// memory for all of its ranks, and the comm thread needs
    /// `MPI_THREAD_MULTIPLE` (it calls MPI while the main thread waits in
    /// MPI too); both are agreed by every rank before anything is allocated.
    fn open(
        config: &mfubench_core::config::Config,
        rank: &crate::rank::Rank,
        plan: Arc<StepPlan>,
    ) -> Result<Self, crate::rank::Exit> {
        let threads = config
            .run
            .gemm_threads
            .map(|t| t as usize)
            .unwrap_or_else(|| {
                let cores = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1);
                (cores / rank.ranks_on_host.max(1) as usize).max(1)
            });
        let (dtype, grad) = (config.run.dtype, config.run.grad_dtype);
        let ready = if rank.threading < mpi::Threading::Multiple {
            Err(BackendError::Unavailable("the MPI library does not provide MPI_THREAD_MULTIPLE, which the CPU backend's comm thread needs; use an MPI built with thread support (Debian's OpenMPI has it)".into()))
        } else {
            Self::fits(config, rank, &plan).map_err(BackendError::OutOfMemory)
        };
        rank.agree(ready)?;
        let world = Arc::new(G::world(rank));
        // A communicator per group stream the plan's collectives use, split
        // from the world in the fixed order of schedule::group_streams
        // (every rank has the same plan, so every rank splits the same
        // groups). DDP's buckets run on the world when there is no tensor
        // parallelism (as before), else on the data-parallel replicas.
        let layout = plan.layout;
        let mut groups = Vec::new();
        for s in crate::schedule::group_streams(&plan) {
            let (StreamId::Group(g) | StreamId::Reduce(g)) = s else {
                continue;
            };
            let (colour, position) = layout.colour_and_position(g, rank.rank);
            let sub = rank.agree(world.split(Some(colour as u32), position as u32).and_then(
                |c| c.ok_or_else(|| BackendError::Failed(format!("the {g} split gave no group"))),
            ))?;
            groups.push((s, Arc::new(sub)));
        }
        let reducer = groups
            .iter()
            .find(|(s, _)| *s == StreamId::Group(Group::DpReplicate) && layout.tensor > 1)
            .map(|(_, c)| c.clone())
            .unwrap_or(world);
        rank.agree(
            CpuBackend::new(plan, dtype, grad, threads, reducer)
                .and_then(|b| b.with_groups(groups)),
        )
    }

    /// The plan's buffers for every rank on this host must fit in the
    /// memory available now (`MemAvailable`, which already excludes the
    /// buffers of backends opened before).
    fn fits(
        config: &mfubench_core::config::Config,
        rank: &crate::rank::Rank,
        plan: &StepPlan,
    ) -> Result<(), String> {
        let need = CpuBackend::memory_bytes(plan, config.run.dtype, config.run.grad_dtype);
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        match crate::output::mem_available_bytes() {
            Some(avail) if need.saturating_mul(rank.ranks_on_host) >= avail => Err(format!(
                "the plan needs {:.1} GiB per rank × {} ranks on this host, more than the {:.1} GiB available; reduce run.layers, run.micro_batch or model.seq",
                gib(need),
                rank.ranks_on_host,
                gib(avail)
            )),
            _ => Ok(()),
        }
    }

    fn device(&self) -> crate::backend::DeviceRecord {
        crate::backend::DeviceRecord {
            device: "cpu".into(),
            name: crate::output::cpu_model(),
            info: std::collections::BTreeMap::from([(
                "gemm_threads".to_string(),
                self.threads.to_string(),
            )]),
            versions: Default::default(),
            spec_peak_tflops: None,
        }
    }

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn sdc_probe(&self, seed: u64, count: u32) -> Result<crate::backend::SdcProbe, BackendError> {
        use mfubench_core::soak::{reference_gemm, sdc_inputs};
        let op = sdc_op();
        let (m, n, k) = (op.m as usize, op.n as usize, op.k as usize);
        let a = sdc_inputs(seed, m * k);
        let b = sdc_inputs(seed.wrapping_add(1), k * n);
        // One thread: the same summation order on every rank, whatever its
        // GEMM threads, so that equal hardware gives equal bits.
        let (outputs, seen_a, seen_b, tolerance) = match self.dtype {
            Dtype::F64 => {
                let mut outs = Vec::new();
                for _ in 0..count {
                    let mut c = vec![0.0f64; m * n];
                    run_gemm(&op, &a, &b, &mut c, 1.0f64, 1);
                    outs.push(c);
                }
                (outs, a.clone(), b.clone(), 1e-12)
            }
            _ => {
                let (a32, b32): (Vec<f32>, Vec<f32>) = (
                    a.iter().map(|x| *x as f32).collect(),
                    b.iter().map(|x| *x as f32).collect(),
                );
                let mut outs = Vec::new();
                for _ in 0..count {
                    let mut c = vec![0.0f32; m * n];
                    run_gemm(&op, &a32, &b32, &mut c, 1.0f32, 1);
                    outs.push(c.iter().map(|x| f64::from(*x)).collect());
                }
                let up = |v: &[f32]| v.iter().map(|x| f64::from(*x)).collect::<Vec<f64>>();
                (outs, up(&a32), up(&b32), 1e-5)
            }
        };
        Ok(crate::backend::SdcProbe {
            outputs,
            reference: reference_gemm(&seen_a, &seen_b, m, n, k),
            tolerance,
        })
    }
}

/// The SDC probe's GEMM: 64×64×64, no transposes.
fn sdc_op() -> mfubench_core::plan::GemmOp {
    use mfubench_core::plan::{GemmKind, GemmOp, Pass};
    GemmOp {
        layer: None,
        kind: GemmKind::FfnUp,
        pass: Pass::Forward,
        m: 64,
        n: 64,
        k: 64,
        batch: 1,
        trans_a: false,
        trans_b: false,
        bucket: None,
        expert: None,
        chunk: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfubench_core::plan::{GemmKind, GemmOp, Pass};

    fn op(m: u64, n: u64, k: u64, ta: bool, tb: bool) -> GemmOp {
        GemmOp {
            layer: Some(0),
            kind: GemmKind::FfnUp,
            pass: Pass::Forward,
            m,
            n,
            k,
            batch: 2,
            trans_a: ta,
            trans_b: tb,
            bucket: None,
            expert: None,
            chunk: None,
        }
    }

    #[test]
    fn gemm_matches_reference_for_every_transpose() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let o = op(7, 5, 3, ta, tb);
            let mut f = random_fill(42);
            let a: Vec<f64> = (0..2 * 21).map(&mut f).collect();
            let b: Vec<f64> = (0..2 * 15).map(&mut f).collect();
            let mut c = vec![0.0; 2 * 35];
            run_gemm(&o, &a, &b, &mut c, 1.0, 1);
            let want = o.reference(&a, &b);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-12, "ta {ta} tb {tb}: {x} vs {y}");
            }
            assert!(c.iter().all(|x| *x != 0.0));
        }
    }

    /// A group whose collectives always fail, as a broken communicator's
    /// would.
    struct FailingGroup;

    impl HostGroup for FailingGroup {
        fn world(_: &crate::rank::Rank) -> FailingGroup {
            FailingGroup
        }
    }

    impl GroupComm for FailingGroup {
        type Buf = HostBuf;
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            1
        }
        fn split(&self, _: Option<u32>, _: u32) -> Result<Option<Self>, BackendError> {
            Ok(Some(FailingGroup))
        }
        fn all_reduce_sum(
            &self,
            _: &HostBuf,
            _: &mut HostBuf,
            _: usize,
        ) -> Result<(), BackendError> {
            Err(BackendError::Failed("link down".into()))
        }
        fn all_gather(&self, _: &HostBuf, _: &mut HostBuf, _: usize) -> Result<(), BackendError> {
            Err(BackendError::Failed("link down".into()))
        }
        fn reduce_scatter_sum(
            &self,
            _: &HostBuf,
            _: &mut HostBuf,
            _: usize,
        ) -> Result<(), BackendError> {
            Err(BackendError::Failed("link down".into()))
        }
        fn send_recv(
            &self,
            _: usize,
            _: &HostBuf,
            _: &mut HostBuf,
            _: usize,
        ) -> Result<(), BackendError> {
            Err(BackendError::Failed("link down".into()))
        }
        fn all_to_all_v(
            &self,
            _: &HostBuf,
            _: &[usize],
            _: &mut HostBuf,
            _: &[usize],
        ) -> Result<(), BackendError> {
            Err(BackendError::Failed("link down".into()))
        }
        fn synchronize(&self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    #[test]
    fn failed_allreduce_fails_the_step() {
        use crate::schedule::run_step;
        use mfubench_core::config::{parse_config, Mode};
        let c = parse_config(
            "[model]\npreset = \"tiny\"\nseq = 32\nhidden = 64\nffn = 128\nheads = 2\nkv_heads = 2\n[run]\nbackend = \"cpu\"\ncheck = false\n",
            "t",
        )
        .unwrap();
        let plan = Arc::new(StepPlan::for_config(&c));
        let mut b = CpuBackend::new(
            plan.clone(),
            Dtype::F32,
            Dtype::F32,
            1,
            Arc::new(FailingGroup),
        )
        .unwrap();
        b.allocate_gemms(&plan).unwrap();
        b.allocate_buckets(&plan).unwrap();
        let e = run_step(&b, &plan, Mode::Comm, Duration::from_secs(30)).unwrap_err();
        assert!(e.to_string().contains("link down"), "{e}");
    }

    #[test]
    fn random_fill_is_never_zero() {
        let mut f = random_fill(1);
        assert!((0..100_000)
            .map(&mut f)
            .all(|x| x != 0.0 && x.abs() <= 1.0 && x.abs() >= 1.0 / 64.0));
    }
}
