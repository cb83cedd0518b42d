//! One Prometheus scraper: GET `/metrics` over plain HTTP, parse the text exposition into
//! samples, and look series up by name and labels.

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::HarnessError;

/// How long the endpoint may take to answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// GETs `path` from a loopback HTTP/1.1 endpoint (the relay's `/metrics` or `/healthz`):
/// the status code (0 if none could be read) and the body.
pub async fn http_get(address: SocketAddr, path: &str) -> Result<(u16, String), HarnessError> {
    let io_error = |source| HarnessError::Http {
        address,
        path: path.to_string(),
        source,
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .map_err(|_| HarnessError::HttpTimeout {
            address,
            path: path.to_string(),
            timeout: HTTP_TIMEOUT,
        })?
        .map_err(io_error)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The address in the metrics URL a relay prints (`http://127.0.0.1:PORT/metrics`).
pub fn metrics_url_address(url: &str) -> Option<SocketAddr> {
    url.trim()
        .strip_prefix("http://")?
        .strip_suffix("/metrics")?
        .parse()
        .ok()
}

/// Fetches and parses the `/metrics` served at `address`.
pub async fn scrape(address: SocketAddr) -> Result<Scrape, HarnessError> {
    let (_, body) = http_get(address, "/metrics").await?;
    Ok(Scrape::parse(&body))
}

/// One line of the exposition: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name, e.g. `tidings_envelopes_stored_total`.
    pub name: String,
    /// What stood between the braces (empty if none), e.g. `kind="Message",from="Client"`.
    pub labels: String,
    /// The value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Every sample, in the order served.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses Prometheus / OpenMetrics text; comments and lines that are no sample are
    /// skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(parse_sample)
            .collect();
        Self { samples }
    }

    /// The sum of the series called `name` (or `name_total`, as OpenMetrics exposes a
    /// counter family) whose labels contain every one of `labels` (e.g.
    /// `reason="bad_signature"`); None if there is no such series.
    pub fn sum(&self, name: &str, labels: &[&str]) -> Option<f64> {
        self.samples
            .iter()
            .filter(|sample| {
                let counter = sample
                    .name
                    .strip_suffix("_total")
                    .is_some_and(|family| family == name);
                (sample.name == name || counter)
                    && labels.iter().all(|label| sample.labels.contains(label))
            })
            .map(|sample| sample.value)
            .reduce(|total, value| total + value)
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    let (name, labels, rest) = match line.split_once('{') {
        Some((name, after)) => {
            let (labels, rest) = after.rsplit_once('}')?;
            (name, labels, rest)
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, "", rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels: labels.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP tidings_envelopes_stored Envelopes stored.\n\
        # TYPE tidings_envelopes_stored counter\n\
        tidings_envelopes_stored_total{kind=\"Message\",from=\"Client\"} 3\n\
        tidings_envelopes_stored_total{kind=\"Message\",from=\"Federation\"} 2\n\
        tidings_envelopes_stored_total{kind=\"Typing\",from=\"Client\"} 1\n\
        tidings_outbox_envelopes 7\n\
        # EOF\n";

    #[test]
    fn series_are_summed_by_name_and_labels() {
        let scrape = Scrape::parse(TEXT);
        assert_eq!(scrape.samples.len(), 4);
        assert_eq!(
            scrape.sum("tidings_envelopes_stored_total", &["kind=\"Message\""]),
            Some(5.0)
        );
        assert_eq!(
            scrape.sum("tidings_envelopes_stored", &["Typing", "Client"]),
            Some(1.0)
        );
        assert_eq!(scrape.sum("tidings_outbox_envelopes", &[]), Some(7.0));
        assert_eq!(scrape.sum("tidings_outbox", &[]), None);
        assert_eq!(
            scrape.sum("tidings_envelopes_stored_total", &["Nope"]),
            None
        );
    }

    #[test]
    fn the_printed_metrics_url_names_the_address() {
        assert_eq!(
            metrics_url_address("http://127.0.0.1:9717/metrics\n"),
            Some(SocketAddr::from(([127, 0, 0, 1], 9717)))
        );
        assert_eq!(metrics_url_address("/ip4/127.0.0.1/tcp/1"), None);
    }
}
