//! `cidr` matching of IPv4 and IPv6 addresses.

use std::net::IpAddr;

use crate::PatternError;

/// A network in CIDR notation.
#[derive(Debug, Clone, PartialEq)]
pub struct Cidr {
    net: IpAddr,
    bits: u32,
}

fn to_u128(ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x:y::/n`.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let bad = || PatternError(format!("Malformed CIDR, one '/' required: {s}"));
        let (ip, bits) = s.split_once('/').ok_or_else(bad)?;
        let net: IpAddr = ip
            .parse()
            .map_err(|_| PatternError(format!("Invalid IP address in CIDR: {s}")))?;
        let bits: u32 = bits
            .parse()
            .map_err(|_| PatternError(format!("Invalid prefix length in CIDR: {s}")))?;
        if bits > to_u128(net).1 {
            return Err(PatternError(format!("Invalid prefix length in CIDR: {s}")));
        }
        Ok(Self { net, bits })
    }

    /// Whether `addr` (an address as text) lies in this network.
    pub fn contains(&self, addr: &str) -> bool {
        let Ok(ip) = addr.parse::<IpAddr>() else {
            return false;
        };
        let (a, width) = to_u128(ip);
        let (n, nwidth) = to_u128(self.net);
        if width != nwidth {
            return false;
        }
        if self.bits == 0 {
            return true;
        }
        let shift = width - self.bits;
        (a >> shift) == (n >> shift)
    }
}
