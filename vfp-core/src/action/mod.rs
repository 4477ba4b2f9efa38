//! Header transpositions applied in place on a frame.
//!
//! [`compile`] turns an allowed decision into a flow pair's two
//! [`transposition::Transposition`]s; [`nat`] owns the app-wide SNAT port
//! bitmaps; [`encap`] builds VXLAN headers.

pub mod compile;
pub mod encap;
pub mod nat;
pub mod transposition;
