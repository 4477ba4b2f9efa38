//! Idle timeouts per flow state, in nanoseconds of the caller's clock.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP: SYN seen, handshake not complete.
    pub tcp_syn: u64,
    /// TCP: established (Azure's default idle timeout is 4 minutes).
    pub tcp_established: u64,
    /// TCP: FIN seen in either direction.
    pub tcp_fin: u64,
    /// TCP: RST seen or both FINs acknowledged.
    pub tcp_closed: u64,
    pub udp: u64,
    pub icmp: u64,
    /// Any other IP protocol.
    pub other: u64,
}

const SEC: u64 = 1_000_000_000;

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn: 30 * SEC,
            tcp_established: 240 * SEC,
            tcp_fin: 30 * SEC,
            tcp_closed: 5 * SEC,
            udp: 60 * SEC,
            icmp: 30 * SEC,
            other: 60 * SEC,
        }
    }
}
