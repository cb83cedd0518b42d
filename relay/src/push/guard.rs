//! The SSRF guard: which push endpoints the relay POSTs to. Unless private endpoints are
//! allowed, an endpoint must be `https://` and must not name or resolve to a loopback,
//! private, link-local, unique-local, shared or unspecified address; names are checked by
//! the DNS resolver the HTTP client uses (so the address checked is the one dialed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::Uri;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an endpoint is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EndpointRefused {
    /// Not a URL the HTTP client can use.
    #[error("the endpoint is not a valid URL")]
    BadUrl,
    /// `http://` while only `https://` is allowed.
    #[error("the endpoint must be https:// on this relay")]
    NotHttps,
    /// It names an address inside a private network or this host.
    #[error("the endpoint points at a loopback, private or link-local address")]
    PrivateAddress,
}

/// The resolver's refusal: every address a name resolved to is refused.
#[derive(Debug, thiserror::Error)]
#[error("every address of the push endpoint's host is loopback, private or link-local")]
pub struct AddressRefused;

/// Checks `endpoint` and parses it. With `allow_private`, `http://` and any address pass.
pub fn check_endpoint(endpoint: &str, allow_private: bool) -> Result<Uri, EndpointRefused> {
    let uri: Uri = endpoint.parse().map_err(|_| EndpointRefused::BadUrl)?;
    let host = uri.host().ok_or(EndpointRefused::BadUrl)?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_private => {}
        Some("http") => return Err(EndpointRefused::NotHttps),
        _ => return Err(EndpointRefused::BadUrl),
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if !allow_private
        && let Ok(ip) = literal.parse::<IpAddr>()
        && !is_public(ip)
    {
        return Err(EndpointRefused::PrivateAddress);
    }
    Ok(uri)
}

/// Whether `ip` is an address on the public internet (not this host, not a private or
/// link-local network, not multicast or reserved for documentation).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let benchmarking = a == 198 && (b == 18 || b == 19);
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || shared
        || benchmarking
        || a == 0
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    let documentation = first == 0x2001 && ip.segments()[1] == 0x0db8;
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || unique_local
        || link_local
        || documentation)
}

/// A DNS resolver that drops refused addresses (and fails if none is left).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = resolved.filter(|addr| is_public(addr.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Whether `error` (or what caused it) is the resolver's refusal.
pub fn refused_by_resolver(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<AddressRefused>() {
            return true;
        }
        cause = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_plain_endpoints_are_refused_unless_allowed() {
        let refused = [
            ("http://push.example.com/x", EndpointRefused::NotHttps),
            ("https://127.0.0.1/x", EndpointRefused::PrivateAddress),
            ("https://10.1.2.3:8443/x", EndpointRefused::PrivateAddress),
            (
                "https://169.254.169.254/latest",
                EndpointRefused::PrivateAddress,
            ),
            ("https://[::1]/x", EndpointRefused::PrivateAddress),
            ("https://[fd00::1]/x", EndpointRefused::PrivateAddress),
            (
                "https://[::ffff:192.168.0.1]/x",
                EndpointRefused::PrivateAddress,
            ),
            ("https://0.0.0.0/x", EndpointRefused::PrivateAddress),
            ("https://100.64.0.1/x", EndpointRefused::PrivateAddress),
            ("ftp://push.example.com/x", EndpointRefused::BadUrl),
        ];
        for (endpoint, why) in refused {
            assert_eq!(check_endpoint(endpoint, false), Err(why), "{endpoint}");
        }
        assert!(check_endpoint("https://push.example.com/x", false).is_ok());
        assert!(check_endpoint("https://8.8.8.8/x", false).is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080/x", true).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_loopback_answers() {
        let name: Name = "localhost".parse().unwrap();
        let error = match GuardedResolver.resolve(name).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(error) => error,
        };
        assert!(refused_by_resolver(error.as_ref()));
    }
}
