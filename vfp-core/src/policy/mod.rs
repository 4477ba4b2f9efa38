//! Layered policy: layers of groups of rules, loaded from a TOML file.
