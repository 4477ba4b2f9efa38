//! Human-readable rendering of control results for `vfpctl`.
