//! The unified flow table and what each flow carries.

pub mod key;
pub mod timeouts;
