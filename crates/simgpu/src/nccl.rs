//! The NCCL stand-in (`libnccl.so.2`): real collectives between processes
//! over TCP, so ranks on different (namespace) hosts form one communicator.
//!
//! **Bootstrap.** `ncclGetUniqueId` starts a root listener and writes its
//! address into the id (magic, IPv4, port, nonce). Each rank of
//! `ncclCommInitRank` opens its own listener, tells the root its address,
//! host and GPU, and gets the table of all ranks back; the root refuses two
//! ranks on one GPU ("Duplicate GPU detected"), as NCCL does. Ranks then
//! connect pairwise (a full mesh: lower rank accepts, higher connects).
//! The advertised address is that of `NCCL_SOCKET_IFNAME` if set, else the
//! first non-loopback IPv4 interface, else 127.0.0.1.
//!
//! **Messages.** Each connection has a reader thread that drains frames into
//! a mailbox keyed by (communicator tag, source, sequence number), so a send
//! never blocks on a peer that is itself sending. A collective's sequence
//! number is taken when it is *issued* (host order, the same on every rank);
//! its data moves when its stream reaches it, so operations run in stream
//! order. Split communicators multiplex the parent's connections under a
//! tag of their own.
//!
//! **Collectives.** All-reduce (sum, in rank order, through f64),
//! all-gather, reduce-scatter, and send/recv (grouped by
//! `ncclGroupStart/End`; self send/recv allowed). Abort unblocks a waiting
//! operation; a lost peer becomes the communicator's async error.
//! Faults: `hang=KIND` (the device's first collective of that kind waits
//! until abort), `link_slow=F` (its sends take 1/F as long); both looked up
//! per collective, so one delayed with `,after=SECONDS` takes the first
//! collective after its delay.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::device::Access;
use crate::fault::Fault;
use crate::hdr::*;
use crate::stream::{self, Stream};

/// NCCL 2.32.3, as `ncclGetVersion` encodes it.
pub const VERSION: c_int = 23203;
const MAGIC: &[u8; 8] = b"SIMNCCL1";

// ---------------------------------------------------------------- wire

fn write_frame(
    s: &mut TcpStream,
    tag: u64,
    src: u32,
    seq: u64,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut h = [0u8; 28];
    h[..8].copy_from_slice(&tag.to_le_bytes());
    h[8..12].copy_from_slice(&src.to_le_bytes());
    h[12..20].copy_from_slice(&seq.to_le_bytes());
    h[20..28].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    s.write_all(&h)?;
    s.write_all(payload)
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<(u64, u32, u64, Vec<u8>)> {
    let mut h = [0u8; 28];
    s.read_exact(&mut h)?;
    let tag = u64::from_le_bytes(h[..8].try_into().unwrap());
    let src = u32::from_le_bytes(h[8..12].try_into().unwrap());
    let seq = u64::from_le_bytes(h[12..20].try_into().unwrap());
    let len = u64::from_le_bytes(h[20..28].try_into().unwrap()) as usize;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p)?;
    Ok((tag, src, seq, p))
}

fn advertised_ip() -> Ipv4Addr {
    let want = std::env::var("NCCL_SOCKET_IFNAME").ok();
    let mut first = None;
    // SAFETY: getifaddrs fills a list we walk read-only and free once.
    unsafe {
        let mut ifa: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut ifa) == 0 {
            let mut p = ifa;
            while !p.is_null() {
                let a = (*p).ifa_addr;
                if !a.is_null()
                    && i32::from((*a).sa_family) == libc::AF_INET
                    && (*p).ifa_flags & libc::IFF_UP as u32 != 0
                {
                    let name = std::ffi::CStr::from_ptr((*p).ifa_name)
                        .to_string_lossy()
                        .into_owned();
                    let sin = &*(a as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                    let chosen = match &want {
                        Some(w) => name.starts_with(w.trim_start_matches('=')),
                        None => !ip.is_loopback(),
                    };
                    if chosen && first.is_none() {
                        first = Some(ip);
                    }
                }
                p = (*p).ifa_next;
            }
            libc::freeifaddrs(ifa);
        }
    }
    first.unwrap_or(Ipv4Addr::LOCALHOST)
}

// ---------------------------------------------------------------- mesh

/// The connections of one `ncclCommInitRank` world and their mailbox.
struct Mesh {
    rank: usize,

    peers: Vec<Option<Mutex<TcpStream>>>,
    mail: Mutex<Mailbox>,
    cv: Condvar,
}

#[derive(Default)]
struct Mailbox {
    frames: HashMap<(u64, u32, u64), Vec<u8>>,
    /// Peers whose connection ended, with why.
    lost: HashMap<u32, String>,
}

impl Mesh {
    fn send(
        &self,
        to: usize,
        tag: u64,
        seq: u64,
        payload: &[u8],
        slow: Option<f64>,
    ) -> Result<(), String> {
        let t0 = Instant::now();
        if to == self.rank {
            let mut m = self.mail.lock().unwrap();
            m.frames.insert((tag, to as u32, seq), payload.to_vec());
            self.cv.notify_all();
        } else {
            let conn = self.peers[to].as_ref().ok_or("no connection")?;
            let mut s = conn.lock().unwrap();
            write_frame(&mut s, tag, self.rank as u32, seq, payload)
                .map_err(|e| format!("send to rank {to} failed: {e}"))?;
        }
        if let Some(f) = slow {
            // A slow link: the transfer takes 1/f as long (at least as long
            // as 2 GB/s would).
            let took = t0
                .elapsed()
                .max(Duration::from_secs_f64(payload.len() as f64 / 2e9));
            std::thread::sleep(took.mul_f64(1.0 / f - 1.0));
        }
        Ok(())
    }

    fn recv(
        &self,
        from: usize,
        tag: u64,
        seq: u64,
        aborted: &AtomicBool,
    ) -> Result<Vec<u8>, String> {
        let key = (tag, from as u32, seq);
        let mut m = self.mail.lock().unwrap();
        loop {
            if let Some(p) = m.frames.remove(&key) {
                return Ok(p);
            }
            if aborted.load(Ordering::SeqCst) {
                return Err("communicator aborted".into());
            }
            if let Some(why) = m.lost.get(&(from as u32)) {
                return Err(format!("connection to rank {from} lost: {why}"));
            }
            m = self
                .cv
                .wait_timeout(m, Duration::from_millis(50))
                .unwrap()
                .0;
        }
    }

    fn wake(&self) {
        let _m = self.mail.lock().unwrap();
        self.cv.notify_all();
    }
}

fn start_reader(mesh: &Arc<Mesh>, peer: usize, mut s: TcpStream) {
    let weak = Arc::downgrade(mesh);
    std::thread::Builder::new()
        .name(format!("simnccl-rx-{peer}"))
        .spawn(move || loop {
            let r = read_frame(&mut s);
            let Some(mesh) = weak.upgrade() else { return };
            let mut m = mesh.mail.lock().unwrap();
            match r {
                Ok((tag, src, seq, p)) => {
                    m.frames.insert((tag, src, seq), p);
                }
                Err(e) => {
                    m.lost.insert(peer as u32, e.to_string());
                    mesh.cv.notify_all();
                    return;
                }
            }
            mesh.cv.notify_all();
        })
        .expect("simgpu: cannot start an NCCL reader thread");
}

// ---------------------------------------------------------------- bootstrap

struct Hello {
    rank: u32,
    nranks: u32,
    ip: Ipv4Addr,
    port: u16,
    host: String,
    uuid: String,
}

fn encode_hello(h: &Hello) -> Vec<u8> {
    format!(
        "{} {} {} {} {} {}",
        h.rank, h.nranks, h.ip, h.port, h.host, h.uuid
    )
    .into_bytes()
}

fn decode_hello(b: &[u8]) -> Option<Hello> {
    let s = String::from_utf8_lossy(b);
    let v: Vec<&str> = s.split(' ').collect();
    if v.len() != 6 {
        return None;
    }
    Some(Hello {
        rank: v[0].parse().ok()?,
        nranks: v[1].parse().ok()?,
        ip: v[2].parse().ok()?,
        port: v[3].parse().ok()?,
        host: v[4].into(),
        uuid: v[5].into(),
    })
}

/// The root: collects every rank's hello and answers each with the table
/// (or an error line), then ends.
fn serve_root(l: TcpListener, nonce: u64) {
    let mut conns: Vec<(TcpStream, Hello)> = Vec::new();
    let mut expected = None;
    while expected.is_none_or(|n| conns.len() < n) {
        let Ok((mut s, _)) = l.accept() else { return };
        let Ok((tag, _, _, p)) = read_frame(&mut s) else {
            continue;
        };
        let Some(h) = decode_hello(&p).filter(|_| tag == nonce) else {
            continue;
        };
        expected = Some(h.nranks as usize);
        conns.push((s, h));
    }
    conns.sort_by_key(|(_, h)| h.rank);
    let mut err = None;
    for (i, (_, h)) in conns.iter().enumerate() {
        if h.rank as usize != i {
            err = Some(format!("rank {} given twice or out of range", h.rank));
        }
        for (_, o) in &conns[..i] {
            if o.host == h.host && o.uuid == h.uuid {
                err = Some(format!(
                    "Duplicate GPU detected : rank {} and rank {} both on CUDA device {} of host {}",
                    o.rank, h.rank, h.uuid, h.host
                ));
            }
        }
    }
    let table: String = match &err {
        Some(e) => format!("ERR {e}"),
        None => conns
            .iter()
            .map(|(_, h)| format!("{}:{}", h.ip, h.port))
            .collect::<Vec<_>>()
            .join(" "),
    };
    for (s, _) in conns.iter_mut() {
        let _ = write_frame(s, nonce, 0, 0, table.as_bytes());
    }
}

fn connect_retry(addr: SocketAddrV4) -> std::io::Result<TcpStream> {
    // The worker's init watchdog bounds the whole init; this loop only
    // covers a peer whose listener is not up yet.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nodelay(true).ok();
                return Ok(s);
            }
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn init_mesh(
    nranks: usize,
    rank: usize,
    id: &ncclUniqueId,
) -> Result<Arc<Mesh>, (ncclResult_t, String)> {
    let raw: Vec<u8> = id.internal.iter().map(|c| *c as u8).collect();
    if &raw[..8] != MAGIC {
        return Err((
            ncclInvalidArgument,
            "the unique id was not made by ncclGetUniqueId (simulated NCCL)".into(),
        ));
    }
    let root = SocketAddrV4::new(
        Ipv4Addr::new(raw[8], raw[9], raw[10], raw[11]),
        u16::from_le_bytes([raw[12], raw[13]]),
    );
    let nonce = u64::from_le_bytes(raw[14..22].try_into().unwrap());
    let sys = |e: std::io::Error| (ncclSystemError, e.to_string());
    let listener = TcpListener::bind("0.0.0.0:0").map_err(sys)?;
    let port = listener.local_addr().map_err(sys)?.port();
    let dev = stream::current_device();
    let hello = Hello {
        rank: rank as u32,
        nranks: nranks as u32,
        ip: advertised_ip(),
        port,
        host: crate::env::host_name(),
        uuid: crate::device::uuid_string(dev),
    };
    let mut r = connect_retry(root).map_err(sys)?;
    write_frame(&mut r, nonce, rank as u32, 0, &encode_hello(&hello)).map_err(sys)?;
    let (_, _, _, table) = read_frame(&mut r).map_err(sys)?;
    let table = String::from_utf8_lossy(&table).into_owned();
    if let Some(e) = table.strip_prefix("ERR ") {
        return Err((ncclInvalidUsage, e.to_string()));
    }
    let addrs: Vec<SocketAddrV4> = table.split(' ').filter_map(|a| a.parse().ok()).collect();
    if addrs.len() != nranks {
        return Err((
            ncclInternalError,
            format!(
                "bootstrap table has {} ranks, expected {nranks}",
                addrs.len()
            ),
        ));
    }
    let mut peers: Vec<Option<TcpStream>> = (0..nranks).map(|_| None).collect();
    // Higher ranks connect to lower ones, which accept.
    for (j, a) in addrs.iter().enumerate().take(rank) {
        let mut s = connect_retry(*a).map_err(sys)?;
        write_frame(&mut s, nonce, rank as u32, 1, &[]).map_err(sys)?;
        peers[j] = Some(s);
    }
    let mut waiting = nranks - rank - 1;
    while waiting > 0 {
        let (mut s, _) = listener.accept().map_err(sys)?;
        s.set_nodelay(true).ok();
        let Ok((tag, src, _, _)) = read_frame(&mut s) else {
            continue;
        };
        if tag != nonce
            || (src as usize) <= rank
            || src as usize >= nranks
            || peers[src as usize].is_some()
        {
            continue;
        }
        peers[src as usize] = Some(s);
        waiting -= 1;
    }
    let readers: Vec<Option<TcpStream>> = peers
        .iter()
        .map(|p| p.as_ref().and_then(|s| s.try_clone().ok()))
        .collect();
    let mesh = Arc::new(Mesh {
        rank,

        peers: peers.into_iter().map(|p| p.map(Mutex::new)).collect(),
        mail: Mutex::new(Mailbox::default()),
        cv: Condvar::new(),
    });
    for (j, s) in readers.into_iter().enumerate() {
        if let Some(s) = s {
            start_reader(&mesh, j, s);
        }
    }
    Ok(mesh)
}

// ---------------------------------------------------------------- communicators

/// A communicator: members of a mesh, with a tag of its own.
pub struct Comm {
    mesh: Arc<Mesh>,
    tag: u64,
    /// Mesh ranks of the members, in communicator rank order.
    members: Vec<usize>,
    me: usize,
    device: usize,
    seq: AtomicU64,
    splits: AtomicU64,
    p2p_send: Mutex<HashMap<usize, u64>>,
    p2p_recv: Mutex<HashMap<usize, u64>>,
    aborted: AtomicBool,
    error: Mutex<Option<(ncclResult_t, String)>>,
    /// Kinds of collectives an injected hang has taken on this
    /// communicator, one entry per hang.
    hung: Mutex<Vec<String>>,
}

impl Comm {
    fn new(mesh: Arc<Mesh>, tag: u64, members: Vec<usize>, device: usize) -> Comm {
        let me = members
            .iter()
            .position(|r| *r == mesh.rank)
            .expect("member of its comm");
        // The clock of delayed faults starts no later than the first
        // communicator.
        crate::fault::start();
        Comm {
            mesh,
            tag,
            members,
            me,
            device,
            seq: AtomicU64::new(0),
            splits: AtomicU64::new(0),
            p2p_send: Mutex::new(HashMap::new()),
            p2p_recv: Mutex::new(HashMap::new()),
            aborted: AtomicBool::new(false),
            error: Mutex::new(None),
            hung: Mutex::new(Vec::new()),
        }
    }

    fn slow(&self) -> Option<f64> {
        crate::fault::of_device(self.device)
            .into_iter()
            .find_map(|f| {
                if let Fault::LinkSlow(x) = f {
                    Some(x)
                } else {
                    None
                }
            })
    }

    fn fail(&self, e: String) {
        let mut g = self.error.lock().unwrap();
        if g.is_none() {
            let code = if self.aborted.load(Ordering::SeqCst) {
                ncclInvalidUsage
            } else {
                ncclRemoteError
            };
            *g = Some((code, e));
        }
    }

    /// Whether this collective is the one an injected hang takes (the
    /// first of its kind once the fault is in effect, one per `hang` fault);
    /// if so it waits until the communicator is aborted.
    fn maybe_hang(&self, kind: &str) -> bool {
        let hit = {
            let mut hung = self.hung.lock().unwrap();
            let due = crate::fault::of_device(self.device)
                .iter()
                .filter(|f| matches!(f, Fault::Hang(k) if k == kind))
                .count();
            let taken = hung.iter().filter(|k| *k == kind).count();
            if due > taken {
                hung.push(kind.to_string());
                true
            } else {
                false
            }
        };
        if hit {
            eprintln!("simgpu: injected fault: {kind} on device {} hangs until its communicator is aborted", self.device);
            while !self.aborted.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.fail(format!("{kind} hung (injected fault) and was aborted"));
        }
        hit
    }

    /// Sends `payload` to every member and returns every member's payload
    /// (own included), in communicator rank order.
    fn exchange(
        &self,
        seq: u64,
        payload: &dyn Fn(usize) -> Vec<u8>,
    ) -> Result<Vec<Vec<u8>>, String> {
        let slow = self.slow();
        for (i, r) in self.members.iter().enumerate() {
            self.mesh.send(*r, self.tag, seq, &payload(i), slow)?;
        }
        self.members
            .iter()
            .map(|r| self.mesh.recv(*r, self.tag, seq, &self.aborted))
            .collect()
    }
}

fn comm_of<'a>(c: ncclComm_t) -> Option<&'a Comm> {
    // SAFETY: communicator handles are Box<Comm> pointers made here and
    // valid until ncclCommDestroy / ncclCommAbort frees them.
    (!c.is_null()).then(|| unsafe { &*(c as *const Comm) })
}

fn set_last_error(msg: &str) {
    eprintln!("simgpu NCCL: {msg}");
    *LAST_ERROR.lock().unwrap() = format!("{msg}\0");
}

static LAST_ERROR: Mutex<String> = Mutex::new(String::new());

// ---------------------------------------------------------------- data types

fn type_size(t: ncclDataType_t) -> Option<usize> {
    Some(match t {
        ncclInt8 | ncclUint8 | ncclFloat8e4m3 | ncclFloat8e5m2 => 1,
        ncclFloat16 | ncclBfloat16 => 2,
        ncclInt32 | ncclUint32 | ncclFloat32 => 4,
        ncclInt64 | ncclUint64 | ncclFloat64 => 8,
        _ => return None,
    })
}

fn decode(t: ncclDataType_t, b: &[u8]) -> Vec<f64> {
    match t {
        ncclFloat32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        ncclFloat64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        ncclFloat16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        ncclBfloat16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        ncclInt32 => b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        ncclUint32 => b
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        ncclInt64 => b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        ncclUint64 => b
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        ncclInt8 => b.iter().map(|x| *x as i8 as f64).collect(),
        _ => b.iter().map(|x| *x as f64).collect(),
    }
}

fn encode(t: ncclDataType_t, v: &[f64], out: &mut [u8]) {
    let n = type_size(t).unwrap_or(1);
    for (x, o) in v.iter().zip(out.chunks_exact_mut(n)) {
        match t {
            ncclFloat32 => o.copy_from_slice(&(*x as f32).to_le_bytes()),
            ncclFloat64 => o.copy_from_slice(&x.to_le_bytes()),
            ncclFloat16 => o.copy_from_slice(&half::f16::from_f64(*x).to_le_bytes()),
            ncclBfloat16 => o.copy_from_slice(&half::bf16::from_f64(*x).to_le_bytes()),
            ncclInt32 => o.copy_from_slice(&(*x as i32).to_le_bytes()),
            ncclUint32 => o.copy_from_slice(&(*x as u32).to_le_bytes()),
            ncclInt64 => o.copy_from_slice(&(*x as i64).to_le_bytes()),
            ncclUint64 => o.copy_from_slice(&(*x as u64).to_le_bytes()),
            ncclInt8 => o[0] = *x as i8 as u8,
            _ => o[0] = *x as u8,
        }
    }
}

/// Sums member buffers in rank order (f64), encoded back in `t`.
fn reduce_sum(t: ncclDataType_t, parts: &[Vec<u8>], out: &mut [u8]) {
    let mut acc = vec![0f64; out.len() / type_size(t).unwrap_or(1)];
    for p in parts {
        for (a, v) in acc.iter_mut().zip(decode(t, p)) {
            *a += v;
        }
    }
    encode(t, &acc, out);
}

// ---------------------------------------------------------------- groups

enum P2p {
    Send { ptr: u64, bytes: usize, peer: usize },
    Recv { ptr: u64, bytes: usize, peer: usize },
}

struct Pending {
    comm: usize,
    stream: usize,
    op: P2p,
    seq: u64,
}

thread_local! {
    static GROUP: std::cell::RefCell<(u32, Vec<Pending>)> = const { std::cell::RefCell::new((0, Vec::new())) };
}

fn issue_p2p(comm: &'static Comm, s: Arc<Stream>, ops: Vec<(P2p, u64)>) {
    let mut acc = Vec::new();
    for (op, _) in &ops {
        match op {
            P2p::Send { ptr, bytes, .. } => acc.push(Access::read("sendbuff", *ptr, *bytes as u64)),
            P2p::Recv { ptr, bytes, .. } => {
                acc.push(Access::write("recvbuff", *ptr, *bytes as u64))
            }
        }
    }
    let tag = comm.tag ^ 0x7032_7000_0000_0000;
    s.enqueue(
        "ncclSend/ncclRecv",
        &acc,
        Box::new(move || {
            if comm.maybe_hang("send_recv") {
                return;
            }
            let slow = comm.slow();
            // Sends first (they never block: the peer's reader drains them),
            // then receives.
            for (op, seq) in &ops {
                if let P2p::Send { ptr, bytes, peer } = op {
                    // SAFETY: range checked at enqueue; ordered by the stream.
                    let data = unsafe { crate::device::bytes(*ptr, *bytes) };
                    if let Err(e) = comm.mesh.send(comm.members[*peer], tag, *seq, data, slow) {
                        return comm.fail(e);
                    }
                }
            }
            for (op, seq) in &ops {
                if let P2p::Recv { ptr, bytes, peer } = op {
                    match comm
                        .mesh
                        .recv(comm.members[*peer], tag, *seq, &comm.aborted)
                    {
                        Ok(p) if p.len() == *bytes => {
                            // SAFETY: range checked at enqueue.
                            unsafe { crate::device::bytes_mut(*ptr, *bytes) }.copy_from_slice(&p);
                        }
                        Ok(p) => {
                            return comm.fail(format!(
                                "recv from rank {peer}: {} bytes arrived, {bytes} expected",
                                p.len()
                            ))
                        }
                        Err(e) => return comm.fail(e),
                    }
                }
            }
        }),
    );
}

fn flush_group(pending: Vec<Pending>) {
    // One task per (communicator, stream), in issue order.
    let mut keys: Vec<(usize, usize)> = Vec::new();
    for p in &pending {
        if !keys.contains(&(p.comm, p.stream)) {
            keys.push((p.comm, p.stream));
        }
    }
    let mut pending: Vec<Option<Pending>> = pending.into_iter().map(Some).collect();
    for (c, s) in keys {
        let mut ops = Vec::new();
        for slot in pending.iter_mut() {
            if slot.as_ref().is_some_and(|p| p.comm == c && p.stream == s) {
                let p = slot.take().unwrap();
                ops.push((p.op, p.seq));
            }
        }
        let comm = comm_of(c as ncclComm_t).expect("grouped op on a live communicator");
        issue_p2p(comm, stream::from_handle(s as *mut c_void), ops);
    }
}

fn p2p(comm: ncclComm_t, s: cudaStream_t, op: P2p) -> ncclResult_t {
    let Some(c) = comm_of(comm) else {
        return ncclInvalidArgument;
    };
    let (peer, send) = match &op {
        P2p::Send { peer, .. } => (*peer, true),
        P2p::Recv { peer, .. } => (*peer, false),
    };
    if peer >= c.members.len() {
        set_last_error(&format!(
            "peer {peer} out of range (communicator of {})",
            c.members.len()
        ));
        return ncclInvalidArgument;
    }
    // The k-th send to a peer matches the peer's k-th receive from us.
    let seq = {
        let mut m = if send {
            c.p2p_send.lock().unwrap()
        } else {
            c.p2p_recv.lock().unwrap()
        };
        let e = m.entry(peer).or_insert(0);
        *e += 1;
        *e
    };
    // Sequence numbers are per direction: a frame is tagged with the
    // sender's mesh rank, so (tag, sender, seq) is unique.
    let pending = Pending {
        comm: comm as usize,
        stream: s as usize,
        op,
        seq,
    };
    let grouped = GROUP.with(|g| {
        let mut g = g.borrow_mut();
        if g.0 > 0 {
            g.1.push(pending);
            None
        } else {
            Some(pending)
        }
    });
    if let Some(p) = grouped {
        flush_group(vec![p]);
    }
    ncclSuccess
}

// ---------------------------------------------------------------- exports

fn collective(
    kind: &'static str,
    comm: ncclComm_t,
    s: cudaStream_t,
    acc: Vec<Access>,
    run: impl FnOnce(&'static Comm, u64) -> Result<(), String> + Send + 'static,
) -> ncclResult_t {
    let Some(c) = comm_of(comm) else {
        return ncclInvalidArgument;
    };
    if c.aborted.load(Ordering::SeqCst) {
        return ncclInvalidUsage;
    }
    // SAFETY: the communicator outlives its queued operations (the backend
    // synchronises its streams before destroying it).
    let c: &'static Comm = unsafe { &*(c as *const Comm) };
    let seq = c.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let name = format!("nccl {kind}");
    stream::from_handle(s as *mut c_void).enqueue(
        &name,
        &acc,
        Box::new(move || {
            if c.maybe_hang(kind) {
                return;
            }
            if let Err(e) = run(c, seq) {
                c.fail(format!("{kind}: {e}"));
            }
        }),
    );
    ncclSuccess
}

crate::exports! {
    fn ncclGetVersion(v: *mut c_int) -> ncclResult_t {
        if v.is_null() { return ncclInvalidArgument; }
        // SAFETY: non-null output pointer.
        unsafe { *v = VERSION };
        ncclSuccess
    }

    fn ncclGetUniqueId(id: *mut ncclUniqueId) -> ncclResult_t {
        if id.is_null() { return ncclInvalidArgument; }
        let l = match TcpListener::bind("0.0.0.0:0") {
            Ok(l) => l,
            Err(e) => { set_last_error(&format!("bootstrap listener: {e}")); return ncclSystemError; }
        };
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let mut nonce = [0u8; 8];
        // SAFETY: getrandom writes 8 bytes into `nonce`.
        unsafe { libc::getrandom(nonce.as_mut_ptr().cast(), 8, 0) };
        let nonce_v = u64::from_le_bytes(nonce) | 1;
        std::thread::Builder::new()
            .name("simnccl-root".into())
            .spawn(move || serve_root(l, nonce_v))
            .expect("simgpu: cannot start the NCCL root");
        let mut raw = [0u8; 128];
        raw[..8].copy_from_slice(MAGIC);
        raw[8..12].copy_from_slice(&advertised_ip().octets());
        raw[12..14].copy_from_slice(&port.to_le_bytes());
        raw[14..22].copy_from_slice(&nonce_v.to_le_bytes());
        // SAFETY: non-null output pointer to a 128-byte id.
        unsafe { (*id).internal = raw.map(|b| b as c_char) };
        ncclSuccess
    }

    fn ncclCommInitRank(comm: *mut ncclComm_t, nranks: c_int, id: ncclUniqueId, rank: c_int) -> ncclResult_t {
        if comm.is_null() || nranks < 1 || rank < 0 || rank >= nranks {
            return ncclInvalidArgument;
        }
        match init_mesh(nranks as usize, rank as usize, &id) {
            Ok(mesh) => {
                let tag = u64::from_le_bytes(id.internal[14..22].iter().map(|c| *c as u8).collect::<Vec<_>>().try_into().unwrap());
                let c = Comm::new(mesh, tag, (0..nranks as usize).collect(), stream::current_device());
                // SAFETY: non-null output pointer; freed by destroy/abort.
                unsafe { *comm = Box::into_raw(Box::new(c)) as ncclComm_t };
                ncclSuccess
            }
            Err((code, msg)) => { set_last_error(&msg); code }
        }
    }

    fn ncclCommSplit(comm: ncclComm_t, color: c_int, key: c_int, newcomm: *mut ncclComm_t, config: *mut ncclConfig_t) -> ncclResult_t {
        let _ = config;
        let Some(c) = comm_of(comm) else { return ncclInvalidArgument };
        if newcomm.is_null() || (color < 0 && color != NCCL_SPLIT_NOCOLOR) { return ncclInvalidArgument; }
        // Blocking and collective over the parent, as in NCCL.
        let seq = c.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mine = format!("{color} {key}").into_bytes();
        let all = match c.exchange(seq, &|_| mine.clone()) {
            Ok(a) => a,
            Err(e) => { set_last_error(&format!("ncclCommSplit: {e}")); return ncclRemoteError; }
        };
        let split_no = c.splits.fetch_add(1, Ordering::SeqCst) + 1;
        if color == NCCL_SPLIT_NOCOLOR {
            // SAFETY: non-null output pointer.
            unsafe { *newcomm = std::ptr::null_mut() };
            return ncclSuccess;
        }
        let mut group: Vec<(i64, usize)> = Vec::new();
        for (i, p) in all.iter().enumerate() {
            let s = String::from_utf8_lossy(p);
            let mut it = s.split(' ').map(|x| x.parse::<i64>().unwrap_or(-1));
            let (col, k) = (it.next().unwrap_or(-1), it.next().unwrap_or(0));
            if col == color as i64 {
                group.push((k, i));
            }
        }
        group.sort();
        let members: Vec<usize> = group.iter().map(|(_, i)| c.members[*i]).collect();
        let tag = c.tag.rotate_left(17) ^ split_no.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (color as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
        let child = Comm::new(c.mesh.clone(), tag, members, c.device);
        // SAFETY: non-null output pointer; freed by destroy/abort.
        unsafe { *newcomm = Box::into_raw(Box::new(child)) as ncclComm_t };
        ncclSuccess
    }

    fn ncclCommCount(comm: ncclComm_t, count: *mut c_int) -> ncclResult_t {
        let Some(c) = comm_of(comm) else { return ncclInvalidArgument };
        if count.is_null() { return ncclInvalidArgument; }
        // SAFETY: non-null output pointer.
        unsafe { *count = c.members.len() as c_int };
        ncclSuccess
    }

    fn ncclCommUserRank(comm: ncclComm_t, rank: *mut c_int) -> ncclResult_t {
        let Some(c) = comm_of(comm) else { return ncclInvalidArgument };
        if rank.is_null() { return ncclInvalidArgument; }
        // SAFETY: non-null output pointer.
        unsafe { *rank = c.me as c_int };
        ncclSuccess
    }

    fn ncclCommCuDevice(comm: ncclComm_t, device: *mut c_int) -> ncclResult_t {
        let Some(c) = comm_of(comm) else { return ncclInvalidArgument };
        if device.is_null() { return ncclInvalidArgument; }
        let ord = crate::device::visible_devices().iter().position(|x| *x == c.device).unwrap_or(0);
        // SAFETY: non-null output pointer.
        unsafe { *device = ord as c_int };
        ncclSuccess
    }

    fn ncclAllReduce(sendbuff: *const c_void, recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, op: ncclRedOp_t, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        let Some(sz) = type_size(datatype) else { return ncclInvalidArgument };
        if op != ncclSum { set_last_error("simulated NCCL reduces with ncclSum only"); return ncclInvalidArgument; }
        let (sp, rp, bytes) = (sendbuff as u64, recvbuff as u64, count * sz);
        let acc = vec![Access::read("sendbuff", sp, bytes as u64), Access::write("recvbuff", rp, bytes as u64)];
        collective("all_reduce", comm, stream, acc, move |c, seq| {
            // SAFETY: ranges checked at enqueue; ordered by the stream.
            let mine = unsafe { crate::device::bytes(sp, bytes) }.to_vec();
            let parts = c.exchange(seq, &|_| mine.clone())?;
            // SAFETY: as above.
            reduce_sum(datatype, &parts, unsafe { crate::device::bytes_mut(rp, bytes) });
            Ok(())
        })
    }

    fn ncclAllGather(sendbuff: *const c_void, recvbuff: *mut c_void, sendcount: usize, datatype: ncclDataType_t, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        let Some(sz) = type_size(datatype) else { return ncclInvalidArgument };
        let Some(cm) = comm_of(comm) else { return ncclInvalidArgument };
        let n = cm.members.len();
        let (sp, rp, bytes) = (sendbuff as u64, recvbuff as u64, sendcount * sz);
        let acc = vec![Access::read("sendbuff", sp, bytes as u64), Access::write("recvbuff", rp, (bytes * n) as u64)];
        collective("all_gather", comm, stream, acc, move |c, seq| {
            // SAFETY: ranges checked at enqueue.
            let mine = unsafe { crate::device::bytes(sp, bytes) }.to_vec();
            let parts = c.exchange(seq, &|_| mine.clone())?;
            // SAFETY: as above.
            let out = unsafe { crate::device::bytes_mut(rp, bytes * n) };
            for (i, p) in parts.iter().enumerate() {
                out[i * bytes..(i + 1) * bytes].copy_from_slice(p);
            }
            Ok(())
        })
    }

    fn ncclReduceScatter(sendbuff: *const c_void, recvbuff: *mut c_void, recvcount: usize, datatype: ncclDataType_t, op: ncclRedOp_t, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        let Some(sz) = type_size(datatype) else { return ncclInvalidArgument };
        if op != ncclSum { set_last_error("simulated NCCL reduces with ncclSum only"); return ncclInvalidArgument; }
        let Some(cm) = comm_of(comm) else { return ncclInvalidArgument };
        let n = cm.members.len();
        let (sp, rp, bytes) = (sendbuff as u64, recvbuff as u64, recvcount * sz);
        let acc = vec![Access::read("sendbuff", sp, (bytes * n) as u64), Access::write("recvbuff", rp, bytes as u64)];
        collective("reduce_scatter", comm, stream, acc, move |c, seq| {
            // SAFETY: ranges checked at enqueue.
            let all = unsafe { crate::device::bytes(sp, bytes * n) }.to_vec();
            // Member i receives block i only.
            let parts = c.exchange(seq, &|i| all[i * bytes..(i + 1) * bytes].to_vec())?;
            // SAFETY: as above.
            reduce_sum(datatype, &parts, unsafe { crate::device::bytes_mut(rp, bytes) });
            Ok(())
        })
    }

    fn ncclSend(sendbuff: *const c_void, count: usize, datatype: ncclDataType_t, peer: c_int, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        let Some(sz) = type_size(datatype) else { return ncclInvalidArgument };
        if peer < 0 { return ncclInvalidArgument; }
        p2p(comm, stream, P2p::Send { ptr: sendbuff as u64, bytes: count * sz, peer: peer as usize })
    }

    fn ncclRecv(recvbuff: *mut c_void, count: usize, datatype: ncclDataType_t, peer: c_int, comm: ncclComm_t, stream: cudaStream_t) -> ncclResult_t {
        let Some(sz) = type_size(datatype) else { return ncclInvalidArgument };
        if peer < 0 { return ncclInvalidArgument; }
        p2p(comm, stream, P2p::Recv { ptr: recvbuff as u64, bytes: count * sz, peer: peer as usize })
    }

    fn ncclGroupStart() -> ncclResult_t {
        GROUP.with(|g| g.borrow_mut().0 += 1);
        ncclSuccess
    }

    fn ncclGroupEnd() -> ncclResult_t {
        let flush = GROUP.with(|g| {
            let mut g = g.borrow_mut();
            if g.0 == 0 {
                return Err(());
            }
            g.0 -= 1;
            Ok(if g.0 == 0 { std::mem::take(&mut g.1) } else { Vec::new() })
        });
        match flush {
            Err(()) => ncclInvalidUsage,
            Ok(p) => { flush_group(p); ncclSuccess }
        }
    }

    fn ncclCommGetAsyncError(comm: ncclComm_t, err: *mut ncclResult_t) -> ncclResult_t {
        let Some(c) = comm_of(comm) else { return ncclInvalidArgument };
        if err.is_null() { return ncclInvalidArgument; }
        let e = c.error.lock().unwrap().as_ref().map(|(code, m)| {
            set_last_error(m);
            *code
        });
        // SAFETY: non-null output pointer.
        unsafe { *err = e.unwrap_or(ncclSuccess) };
        ncclSuccess
    }

    fn ncclCommAbort(comm: ncclComm_t) -> ncclResult_t {
        let Some(c) = comm_of(comm) else { return ncclSuccess };
        c.aborted.store(true, Ordering::SeqCst);
        c.mesh.wake();
        // Queued work may still hold the communicator: it is leaked rather
        // than freed under it (an aborted communicator is the end of the
        // process's NCCL use).
        ncclSuccess
    }

    fn ncclCommDestroy(comm: ncclComm_t) -> ncclResult_t {
        let Some(c) = comm_of(comm) else { return ncclSuccess };
        // NCCL's destroy waits for the communicator's queued operations: the
        // device's streams are drained first.
        for s in Stream::of_device(c.device) {
            s.synchronize();
        }
        // SAFETY: made by Box::into_raw in init/split, destroyed once; no
        // queued operation refers to it any more.
        drop(unsafe { Box::from_raw(comm as *mut Comm) });
        ncclSuccess
    }

    fn ncclGetErrorString(result: ncclResult_t) -> *const c_char {
        let s: &'static [u8] = match result {
            ncclSuccess => b"no error\0",
            ncclUnhandledCudaError => b"unhandled cuda error\0",
            ncclSystemError => b"unhandled system error (simulated NCCL: see the rank's output)\0",
            ncclInternalError => b"internal error\0",
            ncclInvalidArgument => b"invalid argument\0",
            ncclInvalidUsage => b"invalid usage\0",
            ncclRemoteError => b"remote process exited or there was a network error\0",
            ncclInProgress => b"NCCL operation in progress\0",
            _ => b"unknown result code\0",
        };
        s.as_ptr().cast()
    }

    fn ncclGetLastError(_comm: ncclComm_t) -> *const c_char {
        let g = LAST_ERROR.lock().unwrap();
        if g.is_empty() { return c"".as_ptr(); }
        // Leaked on purpose: the caller may keep the pointer.
        Box::leak(g.clone().into_boxed_str()).as_ptr().cast()
    }
}
