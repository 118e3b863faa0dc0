//! The link stage on one rail (`accept.rails`): the node leaders exchange
//! over TCP between their IPv4 addresses on one network interface, so that
//! NIC i of one node meets NIC i of the other and a slow link names its
//! rail.
//!
//! Why TCP of our own and not MPI: an MPI job picks its interfaces once,
//! at start (`btl_tcp_if_include`), for every message; a per-rail test
//! needs one path per interface in one job. The kernel routes a connection
//! to the peer's address on the rail's subnet out of the rail's interface,
//! so rails are expected on subnets of their own, as multi-rail fabrics
//! are. On a GPU cluster this measures the host's TCP path of each rail
//! (IPoIB or RoCE interfaces), not GPUDirect RDMA; NCCL's per-HCA path
//! (`NCCL_IB_HCA` per communicator) is not built.
//!
//! Set-up, in this order on every leader: [`listen`] on the rail's
//! address (port 0), the addresses and ports exchanged over MPI by the
//! caller, then [`RailPeers::connect`]: a connection to each partner of a
//! higher index (the listener's backlog completes the handshake before the
//! partner accepts, so nobody waits on anybody), then one accepted from
//! each partner of a lower index, each announcing its index first.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The IPv4 address of interface `name` in this process's network
/// namespace (the `SIOCGIFADDR` ioctl); None without one.
pub fn ipv4_of(name: &str) -> Option<Ipv4Addr> {
    // SAFETY: SIOCGIFADDR reads ifr_name and the address family and writes
    // ifru_addr of the request.
    let req = unsafe {
        crate::node_facts::interface_ioctl(name, libc::SIOCGIFADDR as _, |req| {
            req.ifr_ifru.ifru_addr.sa_family = libc::AF_INET as libc::sa_family_t;
        })
    }?;
    // SAFETY: the ioctl succeeded for AF_INET, so the union holds a
    // sockaddr, which has a sockaddr_in's layout for that family.
    let sin: libc::sockaddr_in = unsafe {
        std::ptr::read_unaligned(
            (&req.ifr_ifru.ifru_addr as *const libc::sockaddr).cast::<libc::sockaddr_in>(),
        )
    };
    (i32::from(sin.sin_family) == libc::AF_INET)
        .then(|| Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

/// A listener on `addr`, port chosen by the kernel.
pub fn listen(addr: Ipv4Addr) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddrV4::new(addr, 0))
}

/// A leader's address on a rail as two integers for an MPI all-gather
/// (0, 0 without one), and back.
pub fn encode(addr: Option<SocketAddrV4>) -> [u64; 2] {
    match addr {
        Some(a) => [u64::from(u32::from(*a.ip())), u64::from(a.port())],
        None => [0, 0],
    }
}

/// The inverse of [`encode`].
pub fn decode(v: [u64; 2]) -> Option<SocketAddrV4> {
    let ip = u32::try_from(v[0]).ok().filter(|ip| *ip != 0)?;
    let port = u16::try_from(v[1]).ok().filter(|p| *p != 0)?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

/// One leader's connections on a rail, by partner index.
pub struct RailPeers {
    streams: BTreeMap<usize, TcpStream>,
}

impl RailPeers {
    /// Connects leader `me` with each of `partners` (index and address):
    /// out to the higher indices, in from the lower ones, by `deadline`.
    pub fn connect(
        me: usize,
        listener: &TcpListener,
        partners: &[(usize, SocketAddrV4)],
        deadline: Instant,
    ) -> Result<RailPeers, String> {
        let left = || deadline.saturating_duration_since(Instant::now());
        let mut streams = BTreeMap::new();
        for &(peer, addr) in partners.iter().filter(|(p, _)| *p > me) {
            let mut s =
                TcpStream::connect_timeout(&addr.into(), left().max(Duration::from_millis(1)))
                    .map_err(|e| format!("connecting to node {peer} at {addr}: {e}"))?;
            s.write_all(&(me as u64).to_le_bytes())
                .map_err(|e| format!("greeting node {peer} at {addr}: {e}"))?;
            streams.insert(peer, s);
        }
        let lower = partners.iter().filter(|(p, _)| *p < me).count();
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("listener: {e}"))?;
        while streams.len() < partners.len() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} of {lower} partner(s) of a lower index did not connect in time",
                    partners.len() - streams.len()
                ));
            }
            let mut s = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                Err(e) => return Err(format!("accepting a partner: {e}")),
            };
            s.set_nonblocking(false)
                .and_then(|_| s.set_read_timeout(Some(left().max(Duration::from_millis(1)))))
                .map_err(|e| format!("accepted socket: {e}"))?;
            let mut id = [0u8; 8];
            s.read_exact(&mut id)
                .map_err(|e| format!("reading a partner's greeting: {e}"))?;
            let peer = u64::from_le_bytes(id) as usize;
            if !partners.iter().any(|(p, _)| *p == peer && *p < me) || streams.contains_key(&peer) {
                return Err(format!(
                    "an unexpected partner announced itself as node {peer}"
                ));
            }
            s.set_read_timeout(None)
                .map_err(|e| format!("accepted socket: {e}"))?;
            streams.insert(peer, s);
        }
        for s in streams.values() {
            // Latency of the last segment matters as much as bandwidth.
            s.set_nodelay(true)
                .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        }
        Ok(RailPeers { streams })
    }

    /// Sends `send` to `peer` while receiving as many bytes into `recv`
    /// (both ways at once, as `MPI_Sendrecv`).
    pub fn exchange(&mut self, peer: usize, send: &[u8], recv: &mut [u8]) -> Result<(), String> {
        let s = self
            .streams
            .get_mut(&peer)
            .ok_or_else(|| format!("no connection to node {peer}"))?;
        let mut writer = s.try_clone().map_err(|e| format!("node {peer}: {e}"))?;
        std::thread::scope(|scope| {
            let sent = scope.spawn(move || writer.write_all(send));
            let got = s.read_exact(recv);
            let sent = sent
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the sending thread panicked")));
            got.and(sent)
                .map_err(|e| format!("exchange with node {peer}: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_none_is_zero() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 78, 0, 5), 40123);
        assert_eq!(encode(Some(a)), [0x0a4e_0005, 40123]);
        assert_eq!(decode(encode(Some(a))), Some(a));
        assert_eq!(encode(None), [0, 0]);
        assert_eq!(decode([0, 0]), None);
        assert_eq!(decode([1 << 40, 1]), None);
    }

    /// The loopback has 127.0.0.1 in every namespace; no such interface
    /// has none.
    #[test]
    fn the_loopback_has_its_address() {
        assert_eq!(ipv4_of("lo"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(ipv4_of("no-such-if0"), None);
        assert_eq!(ipv4_of(""), None);
    }

    /// Three "nodes" in threads on the loopback: each connects with the
    /// other two, then node 0 and node 2 exchange distinct patterns and
    /// each receives the other's bytes whole.
    #[test]
    fn three_nodes_connect_and_exchange() {
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| listen(Ipv4Addr::LOCALHOST).unwrap())
            .collect();
        let addrs: Vec<SocketAddrV4> = listeners
            .iter()
            .map(|l| match l.local_addr().unwrap() {
                std::net::SocketAddr::V4(a) => a,
                other => panic!("{other}"),
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        let got: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = listeners
                .iter()
                .enumerate()
                .map(|(me, l)| {
                    let partners: Vec<(usize, SocketAddrV4)> =
                        (0..3).filter(|p| *p != me).map(|p| (p, addrs[p])).collect();
                    scope.spawn(move || {
                        let mut peers = RailPeers::connect(me, l, &partners, deadline).unwrap();
                        let send: Vec<u8> =
                            (0..1 << 20).map(|i| (i * (me + 3) % 251) as u8).collect();
                        let mut recv = vec![0u8; send.len()];
                        if me != 1 {
                            peers.exchange(2 - me, &send, &mut recv).unwrap();
                        }
                        recv
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let pattern =
            |me: usize| -> Vec<u8> { (0..1 << 20).map(|i| (i * (me + 3) % 251) as u8).collect() };
        assert!(got[0] == pattern(2) && got[2] == pattern(0));
        assert!(got[1].iter().all(|b| *b == 0));
    }
}
