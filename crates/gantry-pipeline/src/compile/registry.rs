//! Registry hosts a build may not pull from unless private registries are allowed: a
//! pipeline must not make the engine knock on the runner's own loopback services, the
//! link-local network or a cloud's metadata endpoint (security rule 16, SSRF).
//!
//! Only the literal host in the reference is judged here. The engine resolves and pulls,
//! so a public name that resolves to a private address is not caught by this check.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::image;

/// Names and addresses of cloud metadata services (GCP, AWS IPv6, Alibaba Cloud; AWS,
/// Azure and GCP's IPv4 169.254.169.254 is link-local anyway, but named as what it is).
const METADATA_NAMES: [&str; 2] = ["metadata.google.internal", "metadata"];
const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

/// What kind of private host a registry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateHost {
    /// `localhost`, `*.localhost`, 127.0.0.0/8, `::1`.
    Loopback,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// A cloud metadata service's name or address.
    Metadata,
    /// 0.0.0.0 or `::` (the engine's own host).
    Unspecified,
}

impl PrivateHost {
    /// How a diagnostic names it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback address",
            Self::LinkLocal => "a link-local address",
            Self::Metadata => "a cloud metadata address",
            Self::Unspecified => "the unspecified address",
        }
    }
}

/// The registry of `reference` and what private host it is, if it is one.
pub fn private_registry(reference: &str) -> Option<(&str, PrivateHost)> {
    let registry = image::registry_of(reference)?;
    let (host, _port) = image::host_and_port(registry)?;
    classify(host).map(|kind| (registry, kind))
}

/// Judges a host name or literal address (IPv6 without brackets).
pub fn classify(host: &str) -> Option<PrivateHost> {
    // A trailing dot names the same host (`localhost.`); names are case-insensitive.
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return Some(PrivateHost::Loopback);
    }
    if METADATA_NAMES.contains(&host.as_str()) {
        return Some(PrivateHost::Metadata);
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return classify_v6(v6);
    }
    parse_ipv4(&host).and_then(classify_v4)
}

fn classify_v4(ip: Ipv4Addr) -> Option<PrivateHost> {
    if METADATA_V4.contains(&ip) {
        Some(PrivateHost::Metadata)
    } else if ip.is_loopback() {
        Some(PrivateHost::Loopback)
    } else if ip.is_link_local() {
        Some(PrivateHost::LinkLocal)
    } else if ip.is_unspecified() {
        Some(PrivateHost::Unspecified)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<PrivateHost> {
    if METADATA_V6.contains(&ip) {
        return Some(PrivateHost::Metadata);
    }
    if ip.is_loopback() {
        return Some(PrivateHost::Loopback);
    }
    if ip.is_unspecified() {
        return Some(PrivateHost::Unspecified);
    }
    if ip.segments()[0] & 0xffc0 == 0xfe80 {
        return Some(PrivateHost::LinkLocal);
    }
    // IPv4 written as IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d) or through
    // the well-known NAT64 prefix (64:ff9b::/96).
    let [a, b, c, d, e, f, g, h] = ip.segments();
    let nat64 = [a, b, c, d, e, f] == [0x64, 0xff9b, 0, 0, 0, 0];
    let embedded = if nat64 {
        Some(Ipv4Addr::from((u32::from(g) << 16) | u32::from(h)))
    } else {
        ip.to_ipv4()
    };
    embedded.and_then(classify_v4)
}

/// An IPv4 address in any form the C resolver accepts (`inet_aton`): one to four parts,
/// each decimal, octal (`0177`) or hex (`0x7f`), the last filling the remaining bytes
/// (`127.1`). Engines that resolve through libc reach these too.
fn parse_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let values = parts
        .iter()
        .map(|part| parse_ipv4_part(part))
        .collect::<Option<Vec<u32>>>()?;
    let (last, leading) = values.split_last()?;
    let mut address: u32 = 0;
    for (i, &value) in leading.iter().enumerate() {
        if value > 0xff {
            return None;
        }
        address |= value << (24 - 8 * i);
    }
    let last_bits = 32 - 8 * leading.len();
    if last_bits < 32 && *last >= 1 << last_bits {
        return None;
    }
    Some(Ipv4Addr::from(address | last))
}

fn parse_ipv4_part(part: &str) -> Option<u32> {
    if let Some(hex) = part.strip_prefix("0x") {
        // `0x` alone is 0 to inet_aton.
        return match hex {
            "" => Some(0),
            _ if hex.chars().all(|c| c.is_ascii_hexdigit()) => u32::from_str_radix(hex, 16).ok(),
            _ => None,
        };
    }
    let (digits, radix) = match part.strip_prefix('0') {
        Some(octal) if !octal.is_empty() => (octal, 8),
        _ => (part, 10),
    };
    // from_str_radix alone would take a leading `+`.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_hosts() {
        use PrivateHost::*;
        for (host, kind) in [
            ("localhost", Loopback),
            ("LocalHost.", Loopback),
            ("registry.localhost", Loopback),
            ("127.0.0.1", Loopback),
            ("127.8.9.10", Loopback),
            ("127.1", Loopback),
            ("0177.0.0.1", Loopback),
            ("0x7f.0.0.1", Loopback),
            ("2130706433", Loopback),
            ("::1", Loopback),
            ("0:0:0:0:0:0:0:1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("169.254.1.2", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("169.254.169.254", Metadata),
            ("::ffff:169.254.169.254", Metadata),
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("metadata.google.internal", Metadata),
            ("Metadata", Metadata),
            ("fd00:ec2::254", Metadata),
            ("100.100.100.200", Metadata),
            ("0.0.0.0", Unspecified),
            ("0", Unspecified),
            ("0x", Unspecified),
            ("::", Unspecified),
        ] {
            assert_eq!(classify(host), Some(kind), "{host}");
        }
    }

    #[test]
    fn public_hosts() {
        for host in [
            "ghcr.io",
            "registry.example.com",
            "localhost.example.com",
            "my-localhost",
            "metadata.example",
            "10.0.0.1",
            "192.168.1.10",
            "100.100.100.201",
            "128.0.0.1",
            "8.8.8.8",
            "fec0::1",
            "2001:db8::1",
            "fd00:ec2::253",
            "256.1.1.1",
            "1.2.3.4.5",
            "0x+7f.0.0.1",
            "09.1.1.1",
        ] {
            assert_eq!(classify(host), None, "{host}");
        }
    }

    #[test]
    fn registries_of_references() {
        for (reference, registry) in [
            ("localhost:5000/app", Some("localhost:5000")),
            ("127.0.0.1/app:1", Some("127.0.0.1")),
            ("[::1]:5000/team/app@sha256:abc", Some("[::1]:5000")),
            ("[fe80::1]/app", Some("[fe80::1]")),
            (
                "metadata.google.internal/x",
                Some("metadata.google.internal"),
            ),
            ("metadata:80/x", Some("metadata:80")),
        ] {
            assert_eq!(
                private_registry(reference).map(|(r, _)| r),
                registry,
                "{reference}"
            );
        }
        for public in [
            "localhost",
            "metadata/app",
            "alpine:3.20",
            "ghcr.io/localhost/app",
        ] {
            assert_eq!(private_registry(public), None, "{public}");
        }
    }
}
