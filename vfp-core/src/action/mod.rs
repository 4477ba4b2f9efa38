//! Header transpositions applied in place on a frame.
//!
//! [`compile`] turns an allowed decision into a flow pair's two
//! [`transposition::Transposition`]s; [`nat`] owns the app-wide SNAT port
//! bitmaps; [`encap`] builds VXLAN headers; [`icmp_error`] translates
//! the ICMP errors that belong to a flow.

pub mod compile;
pub mod encap;
pub mod icmp_error;
pub mod nat;
pub mod transposition;
