//! Slow path: evaluate the policy layers for the first packet of a connection.
