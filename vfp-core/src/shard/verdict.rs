//! What happens to a packet: forwarded, handed to another lcore, or
//! dropped for a named, counted reason.

use crate::parse::ParseError;

/// The fate of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit on this vport (the frame has been transposed in place).
    Forward { vport: u16 },
    /// The flow lives on another shard: hand the untouched packet to that
    /// lcore, which calls `process` with `may_redirect = false`.
    Redirect { owner: usize },
    /// Free the packet; the reason has been counted.
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $v:ident => $s:literal, )*) => {
        /// Why a packet was dropped. Every drop is counted under one of these.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum DropReason {
            $( $(#[$doc])* $v, )*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: [DropReason; [$($s),*].len()] = [$(DropReason::$v),*];

            /// Kebab-case name used in counters and by the operator.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( DropReason::$v => $s, )*
                }
            }

            /// Index of the reason in [`DropReason::ALL`].
            #[inline]
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

drop_reasons! {
    /// The frame is shorter than a header it claims to carry.
    ParseTruncated => "parse-truncated",
    /// A header field is invalid (IP version, IHL, lengths...).
    ParseMalformed => "parse-malformed",
    /// Nested encapsulation or an over-long header chain.
    ParseTooDeep => "parse-too-deep",
    /// The policy denies the connection (on its first packet, or after a
    /// policy change re-evaluated it).
    PolicyDeny => "policy-deny",
    /// A TCP packet other than a SYN for a connection the table does not
    /// know (stateful: only a SYN may open a connection), an ICMP echo
    /// reply without its request, or an ICMP error quoting a packet of no
    /// known flow.
    NoFlow => "no-flow",
    /// The shard's flow table (or its slab of pairs) is full: the new
    /// connection is refused rather than evicting a live one.
    TableFull => "table-full",
    /// No free SNAT port in the pool (or no pool address registered).
    NatExhausted => "nat-exhausted",
    /// A non-first IP fragment that cannot follow its datagram's first
    /// fragment (nothing is reassembled): the first was not forwarded,
    /// came more than 5 s before or had its entry replaced, its flow is
    /// gone, or the fragment overlaps the first one's bytes or ends past
    /// 65,535 bytes.
    Fragment => "fragment",
    /// TTL / hop limit would reach zero.
    TtlExpired => "ttl-expired",
    /// No headroom in the buffer to push the encapsulation (or the
    /// result would exceed an IPv4 datagram).
    NoHeadroom => "no-headroom",
    /// Decap of a frame that is not VXLAN with the expected VNI, or a
    /// reply that would need an encap we cannot build (IPv6 underlay).
    BadEncap => "bad-encap",
    /// The NIC's transmit queue refused the packet (counted by the app).
    TxFull => "tx-full",
    /// No mbuf to copy or build a packet into (counted by the app).
    NoMbuf => "no-mbuf",
    /// The new connection's return key is already used by another flow
    /// (e.g. two clients DNAT'd to one backend with the same tuple).
    FlowConflict => "flow-conflict",
    /// A NAT address of the other IP family than the packet's.
    NatFamily => "nat-family",
    /// A non-IP frame arrived on a vport the policy does not know.
    NoVport => "no-vport",
}

impl From<ParseError> for DropReason {
    fn from(e: ParseError) -> DropReason {
        match e {
            ParseError::Truncated => DropReason::ParseTruncated,
            ParseError::Malformed => DropReason::ParseMalformed,
            ParseError::TooDeep => DropReason::ParseTooDeep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_with_unique_names() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
        assert_eq!(DropReason::from(ParseError::TooDeep), DropReason::ParseTooDeep);
    }
}
