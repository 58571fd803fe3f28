//! Named listeners as Kafka spells them: `NAME://host:port,...`, each with a security protocol
//! (the name itself, unless `--listener-security-protocol-map NAME:PROTOCOL,...` says
//! otherwise), and the advertised endpoint clients are handed for each name.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Most listeners one node opens.
pub const LISTENERS_MAX: usize = 16;
/// Kafka's default listener name, used by `--listen-address`.
pub const PLAINTEXT_NAME: &str = "PLAINTEXT";

/// Kafka's `SecurityProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(text: &str) -> Option<SecurityProtocol> {
        match text.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One listener this node binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
}

/// `NAME://host:port` entries, in order; host may be empty (all interfaces), an IP, or
/// `localhost`.
fn parse_entries(flag: &str, text: &str) -> Result<Vec<(String, String, u16)>, String> {
    let mut entries: Vec<(String, String, u16)> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, address) = entry
            .split_once("://")
            .ok_or_else(|| format!("{flag} entry {entry:?} is not NAME://host:port"))?;
        let name = name.to_ascii_uppercase();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(format!("{flag} entry {entry:?} has a bad listener name"));
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("{flag} entry {entry:?} has no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{flag} entry {entry:?} has a bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if entries.iter().any(|(known, _, _)| *known == name) {
            return Err(format!("{flag} names listener {name} twice"));
        }
        entries.push((name, host.to_string(), port));
    }
    if entries.is_empty() || entries.len() > LISTENERS_MAX {
        return Err(format!("{flag} must name 1 to {LISTENERS_MAX} listeners"));
    }
    Ok(entries)
}

/// `NAME:PROTOCOL,...`.
fn parse_protocol_map(text: Option<&str>) -> Result<Vec<(String, SecurityProtocol)>, String> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, protocol) = entry.split_once(':').ok_or_else(|| {
                format!("--listener-security-protocol-map entry {entry:?} is not NAME:PROTOCOL")
            })?;
            let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
                format!("--listener-security-protocol-map entry {entry:?}: unknown protocol")
            })?;
            Ok((name.to_ascii_uppercase(), protocol))
        })
        .collect()
}

fn bind_ip(flag: &str, host: &str) -> Result<IpAddr, String> {
    if host.is_empty() {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.parse()
        .map_err(|_| format!("{flag}: {host:?} is not an IP address to bind"))
}

/// The listeners to bind: `--listeners` when given, else one PLAINTEXT listener on
/// `listen_address`.
pub fn listener_specs(
    listeners: Option<&str>,
    protocol_map: Option<&str>,
    listen_address: SocketAddr,
) -> Result<Vec<ListenerSpec>, String> {
    let Some(text) = listeners else {
        return Ok(vec![ListenerSpec {
            name: PLAINTEXT_NAME.to_string(),
            protocol: SecurityProtocol::Plaintext,
            bind: listen_address,
        }]);
    };
    let map = parse_protocol_map(protocol_map)?;
    parse_entries("--listeners", text)?
        .into_iter()
        .map(|(name, host, port)| {
            let protocol = map
                .iter()
                .find(|(mapped, _)| *mapped == name)
                .map(|(_, protocol)| *protocol)
                .or_else(|| SecurityProtocol::parse(&name))
                .ok_or_else(|| {
                    format!(
                        "listener {name} is no security protocol; map it with \
                         --listener-security-protocol-map {name}:PROTOCOL"
                    )
                })?;
            let bind = SocketAddr::new(bind_ip("--listeners", &host)?, port);
            Ok(ListenerSpec {
                name,
                protocol,
                bind,
            })
        })
        .collect()
}

/// `--advertised-listeners` as (name, host, port); every name must be a bound listener's.
pub fn advertised_overrides(
    text: &str,
    listeners: &[ListenerSpec],
) -> Result<Vec<(String, String, u16)>, String> {
    let entries = parse_entries("--advertised-listeners", text)?;
    for (name, host, _) in &entries {
        if !listeners.iter().any(|listener| listener.name == *name) {
            return Err(format!(
                "--advertised-listeners names {name}, which --listeners does not"
            ));
        }
        if host.is_empty() {
            return Err(format!("--advertised-listeners entry {name} has no host"));
        }
    }
    Ok(entries)
}

/// A registered broker's listener named `name`: clients get the endpoint of the listener they
/// came in on (Kafka's rule); a broker lacking it is left out.
pub fn listener_named<'a>(
    listeners: &'a [sluice_raft::image::Listener],
    name: &str,
) -> Option<&'a sluice_raft::image::Listener> {
    listeners.iter().find(|listener| listener.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_kafka_style() {
        let default: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        let specs = listener_specs(
            Some("PLAINTEXT://127.0.0.1:9092, sasl_ssl://:9094,INTERNAL://localhost:0"),
            Some("INTERNAL:SSL"),
            default,
        )
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(specs[1].name, "SASL_SSL");
        assert_eq!(specs[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(specs[1].bind.to_string(), "0.0.0.0:9094");
        assert_eq!(specs[2].protocol, SecurityProtocol::Ssl);
        assert_eq!(specs[2].bind.to_string(), "127.0.0.1:0");
        let single = listener_specs(None, None, default).unwrap();
        assert_eq!(single[0].name, "PLAINTEXT");
        assert_eq!(single[0].bind, default);
    }

    #[test]
    fn bad_listeners_are_refused() {
        let default: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        for text in [
            "",
            "127.0.0.1:9092",
            "CUSTOM://127.0.0.1:1",
            "PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2",
            "PLAINTEXT://example.com:1",
            "PLAINTEXT://127.0.0.1:x",
        ] {
            assert!(listener_specs(Some(text), None, default).is_err(), "{text}");
        }
        let specs = listener_specs(Some("PLAINTEXT://:1"), None, default).unwrap();
        assert!(advertised_overrides("SSL://h:1", &specs).is_err());
        assert!(advertised_overrides("PLAINTEXT://:1", &specs).is_err());
        assert_eq!(
            advertised_overrides("PLAINTEXT://kafka-1:19092", &specs).unwrap(),
            vec![("PLAINTEXT".to_string(), "kafka-1".to_string(), 19092)]
        );
    }
}
