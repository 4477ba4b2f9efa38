//! Typed zero-copy views over protocol headers, one file per header.
