//! Header transpositions applied in place on a frame.
