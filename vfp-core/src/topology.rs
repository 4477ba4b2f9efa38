//! What the engine knows of the switch's vports: names (as policy files
//! use them), roles (which decide a packet's direction) and the default
//! peer each forwards to when no policy route names an egress.

/// Which side of the switch a vport faces.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Role {
    /// Faces a VM: packets arriving here are outbound.
    #[default]
    Vm,
    /// Faces the network: packets arriving here are inbound.
    Net,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Vm => "vm",
            Role::Net => "net",
        }
    }
    pub fn direction(self) -> crate::flow::key::Direction {
        match self {
            Role::Vm => crate::flow::key::Direction::Outbound,
            Role::Net => crate::flow::key::Direction::Inbound,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VportInfo {
    pub name: String,
    pub role: Role,
    /// Index of the vport packets leave by when no route says otherwise.
    pub peer: u16,
}

impl VportInfo {
    pub fn new(name: &str, role: Role, peer: u16) -> VportInfo {
        VportInfo {
            name: name.to_string(),
            role,
            peer,
        }
    }
}

/// Index of `name` in `vports`.
pub fn vport_index(vports: &[VportInfo], name: &str) -> Option<u16> {
    vports.iter().position(|v| v.name == name).map(|i| i as u16)
}
