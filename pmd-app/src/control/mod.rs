//! Control socket: protocol, server and client.
