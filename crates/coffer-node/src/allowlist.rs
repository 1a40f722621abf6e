//! The node's security group: the client addresses it accepts, checked on TCP accept before
//! any TLS work, so that a refused address costs the node nothing but a closed socket.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A CIDR that does not parse, named with the text given and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a CIDR: {reason}")]
pub struct CidrError {
    pub text: String,
    pub reason: String,
}

/// One network: an address and a prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as
    /// a dual-stack socket reports IPv4 peers) is matched as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip.to_bits(), self.prefix) == net.to_bits(),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip.to_bits(), self.prefix) == net.to_bits(),
            _ => false,
        }
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    // A shift by the full width would overflow: /0 keeps no bit.
    if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - u32::from(prefix))) }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix))) }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `a.b.c.d/n` or `x::y/n`; a bare address means a single host (`/32` or `/128`).
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let err = |reason: String| CidrError { text: text.to_owned(), reason };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| err(format!("'{addr}' is not an IP address")))?;
        let max: u8 = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().map_err(|_| err(format!("prefix length '{p}' is not a number")))?,
        };
        if prefix > max {
            return Err(err(format!("prefix length {prefix} > {max}")));
        }
        let masked = match network {
            IpAddr::V4(v4) => IpAddr::V4(mask_v4(v4.to_bits(), prefix).into()),
            IpAddr::V6(v6) => IpAddr::V6(mask_v6(v6.to_bits(), prefix).into()),
        };
        // Host bits set usually means a typo in the prefix; say so rather than guess.
        if masked != network {
            return Err(err(format!("host bits are set (the network is {masked}/{prefix})")));
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The networks a node accepts clients from. Empty means nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<Cidr>,
}

impl AllowList {
    /// Parses CIDR strings; the first bad one is named in the error.
    pub fn parse<S: AsRef<str>>(cidrs: &[S]) -> Result<Self, CidrError> {
        let networks = cidrs.iter().map(|c| c.as_ref().trim().parse()).collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// Whether a client at `ip` may connect.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// The networks, in the order given.
    pub fn networks(&self) -> &[Cidr] {
        &self.networks
    }
}

/// Loopback only (`127.0.0.0/8` and `::1/128`): a node exposes nothing until told to.
impl Default for AllowList {
    fn default() -> Self {
        Self::parse(&DEFAULT_ALLOWED_CLIENTS).unwrap_or(Self { networks: Vec::new() })
    }
}

/// The default allow-list, as text (also the configuration's default).
pub const DEFAULT_ALLOWED_CLIENTS: [&str; 2] = ["127.0.0.0/8", "::1/128"];

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_is_loopback_only() {
        let list = AllowList::default();
        assert_eq!(list.networks().len(), 2);
        assert!(list.allows(ip("127.0.0.1")) && list.allows(ip("127.255.0.9")) && list.allows(ip("::1")));
        assert!(list.allows(ip("::ffff:127.0.0.1")));
        assert!(
            !list.allows(ip("10.0.0.1")) && !list.allows(ip("::2")) && !list.allows(ip("::ffff:10.0.0.1"))
        );
    }

    #[test]
    fn networks_match_by_prefix() {
        let list = AllowList::parse(&["10.0.0.0/8", "192.168.1.7", "fd00::/8", "0.0.0.0/0"]).unwrap();
        assert!(
            list.allows(ip("10.200.3.4")) && list.allows(ip("192.168.1.7")) && list.allows(ip("fd12::1"))
        );
        assert!(list.allows(ip("8.8.8.8")), "0.0.0.0/0 matches every IPv4 address");
        assert!(!list.allows(ip("fe80::1")), "an IPv4 network never matches IPv6");
        let v6 = AllowList::parse(&["::/0"]).unwrap();
        assert!(v6.allows(ip("2001:db8::1")) && !v6.allows(ip("1.2.3.4")));
        assert_eq!(list.networks()[1].to_string(), "192.168.1.7/32");
        assert!(!AllowList::parse::<&str>(&[]).unwrap().allows(ip("127.0.0.1")));
    }

    #[test]
    fn bad_cidrs_are_named_with_the_reason() {
        let err = AllowList::parse(&["127.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert_eq!(err.to_string(), "'10.0.0.0/33' is not a CIDR: prefix length 33 > 32");
        let err = AllowList::parse(&["::1/129"]).unwrap_err();
        assert_eq!(err.reason, "prefix length 129 > 128");
        let err = AllowList::parse(&["10.0.0.1/8"]).unwrap_err();
        assert_eq!(err.reason, "host bits are set (the network is 10.0.0.0/8)");
        assert_eq!(AllowList::parse(&["host/8"]).unwrap_err().reason, "'host' is not an IP address");
        assert_eq!(AllowList::parse(&["1.2.3.4/x"]).unwrap_err().reason, "prefix length 'x' is not a number");
    }
}
