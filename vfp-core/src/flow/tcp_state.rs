//! A flow pair's view of its TCP connection, driven by the flags of the
//! packets seen in both directions.
//!
//! This is deliberately coarser than RFC 793's state machine: the switch
//! sees both directions but no sequence numbers are checked, so the only
//! purpose of the state is choosing an idle timeout (a half-open SYN or a
//! closed connection should not hold a table slot, or a NAT port, for the
//! four minutes an established connection gets). The *forward* side is
//! the one that sent the first SYN; the *reverse* side answers it.
//!
//! ```text
//!  SynSent --rev SYN+ACK--> SynReceived --fwd ACK--> Established
//!     any state --FIN from one side--> FinWait --FIN from the other--> TimeWait
//!     any state --RST--> Closed
//!     TimeWait/Closed --fwd SYN (no ACK)--> SynSent   (port reuse)
//! ```

use crate::flow::pair::Side;
use crate::flow::timeouts::Timeouts;

/// TCP flag bits as they appear in the flags byte.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// Coarse connection state, for idle timeouts and the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TcpState {
    /// The forward side sent a SYN; no answer yet.
    #[default]
    SynSent,
    /// The reverse side answered SYN+ACK; the final ACK is outstanding.
    SynReceived,
    /// Handshake complete.
    Established,
    /// One side sent a FIN.
    FinWait,
    /// Both sides sent a FIN (closing / TIME_WAIT).
    TimeWait,
    /// A RST was seen.
    Closed,
}

impl TcpState {
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::SynSent => "syn-sent",
            TcpState::SynReceived => "syn-received",
            TcpState::Established => "established",
            TcpState::FinWait => "fin-wait",
            TcpState::TimeWait => "time-wait",
            TcpState::Closed => "closed",
        }
    }

    /// Idle timeout of a connection in this state.
    pub fn timeout(self, t: &Timeouts) -> u64 {
        match self {
            TcpState::SynSent | TcpState::SynReceived => t.tcp_syn,
            TcpState::Established => t.tcp_established,
            TcpState::FinWait => t.tcp_fin,
            TcpState::TimeWait | TcpState::Closed => t.tcp_closed,
        }
    }
}

/// The state plus which sides have sent a FIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpTracker {
    state: TcpState,
    /// Bit 0: forward side sent FIN; bit 1: reverse side did.
    fins: u8,
}

impl TcpTracker {
    /// A tracker for a connection whose first packet (a SYN) was seen.
    pub fn new() -> TcpTracker {
        TcpTracker::default()
    }

    #[inline]
    pub fn state(&self) -> TcpState {
        self.state
    }

    /// Updates the state with a packet's flags seen on `side`.
    #[inline]
    pub fn update(&mut self, side: Side, f: u8) {
        use TcpState::*;
        if f & flags::RST != 0 {
            self.state = Closed;
            return;
        }
        let syn = f & flags::SYN != 0;
        let ack = f & flags::ACK != 0;
        // A fresh SYN from the initiator on a finished connection is the
        // same 4-tuple being reused: start over rather than drop it.
        if matches!(self.state, TimeWait | Closed) && side == Side::Forward && syn && !ack {
            *self = TcpTracker::new();
            return;
        }
        if f & flags::FIN != 0 && self.state != Closed {
            self.fins |= 1 << (side as u8);
            self.state = if self.fins == 0b11 { TimeWait } else { FinWait };
            return;
        }
        self.state = match (self.state, side) {
            (SynSent, Side::Reverse) if syn && ack => SynReceived,
            (SynReceived, Side::Forward) if ack && !syn => Established,
            (s, _) => s,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;
    use proptest::prelude::*;

    const F: Side = Side::Forward;
    const R: Side = Side::Reverse;

    fn run(steps: &[(Side, u8)]) -> TcpState {
        let mut t = TcpTracker::new();
        for &(s, f) in steps {
            t.update(s, f);
        }
        t.state()
    }

    #[test]
    fn handshake_and_close() {
        assert_eq!(run(&[(F, SYN)]), TcpState::SynSent);
        assert_eq!(run(&[(F, SYN), (R, SYN | ACK)]), TcpState::SynReceived);
        let est = [(F, SYN), (R, SYN | ACK), (F, ACK)];
        assert_eq!(run(&est), TcpState::Established);
        let mut v = est.to_vec();
        v.push((F, FIN | ACK));
        assert_eq!(run(&v), TcpState::FinWait);
        v.push((R, ACK));
        assert_eq!(run(&v), TcpState::FinWait);
        v.push((R, FIN | ACK));
        assert_eq!(run(&v), TcpState::TimeWait);
        v.push((F, ACK));
        assert_eq!(run(&v), TcpState::TimeWait);
    }

    #[test]
    fn one_side_repeating_fin_is_still_fin_wait() {
        let s = run(&[(F, SYN), (R, SYN | ACK), (F, ACK), (R, FIN), (R, FIN)]);
        assert_eq!(s, TcpState::FinWait);
    }

    #[test]
    fn out_of_order_packets_do_not_advance() {
        // The initiator's ACK before any SYN+ACK, and a SYN+ACK from the
        // wrong side, leave the handshake where it was.
        assert_eq!(run(&[(F, SYN), (F, ACK)]), TcpState::SynSent);
        assert_eq!(run(&[(F, SYN), (F, SYN | ACK)]), TcpState::SynSent);
        assert_eq!(run(&[(F, SYN), (R, SYN | ACK), (R, ACK)]), TcpState::SynReceived);
    }

    #[test]
    fn rst_closes_and_syn_reopens() {
        let s = run(&[(F, SYN), (R, SYN | ACK), (F, ACK), (R, RST | ACK)]);
        assert_eq!(s, TcpState::Closed);
        let s = run(&[(F, SYN), (R, RST), (F, SYN)]);
        assert_eq!(s, TcpState::SynSent);
        // A SYN from the responder does not reopen.
        assert_eq!(run(&[(F, SYN), (R, RST), (R, SYN)]), TcpState::Closed);
        // After reopening, FINs start from scratch.
        let s = run(&[(F, FIN), (R, FIN), (F, SYN), (F, FIN)]);
        assert_eq!(s, TcpState::FinWait);
    }

    #[test]
    fn timeouts_follow_state() {
        let t = Timeouts::default();
        assert_eq!(TcpState::SynSent.timeout(&t), t.tcp_syn);
        assert_eq!(TcpState::Established.timeout(&t), t.tcp_established);
        assert_eq!(TcpState::FinWait.timeout(&t), t.tcp_fin);
        assert_eq!(TcpState::TimeWait.timeout(&t), t.tcp_closed);
        assert_eq!(TcpState::Closed.timeout(&t), t.tcp_closed);
    }

    fn step() -> impl Strategy<Value = (Side, u8)> {
        (prop::bool::ANY, any::<u8>()).prop_map(|(r, f)| (if r { R } else { F }, f))
    }

    proptest! {
        /// Whatever the flags, RST always closes and the state never
        /// returns to the handshake except through a forward SYN.
        #[test]
        fn transitions_are_sane(steps in prop::collection::vec(step(), 0..40)) {
            let mut t = TcpTracker::new();
            for (side, f) in steps {
                let before = t.state();
                t.update(side, f);
                let after = t.state();
                if f & RST != 0 {
                    prop_assert_eq!(after, TcpState::Closed);
                }
                let finished = |s| matches!(s, TcpState::FinWait | TcpState::TimeWait | TcpState::Closed);
                if finished(before) && !finished(after) {
                    prop_assert_eq!(after, TcpState::SynSent);
                    prop_assert!(side == F && f & SYN != 0 && f & ACK == 0);
                }
                if before == TcpState::Established {
                    prop_assert!(after != TcpState::SynSent || f & SYN != 0);
                }
            }
        }
    }
}
