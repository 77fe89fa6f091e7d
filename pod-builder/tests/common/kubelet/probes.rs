//! Probes as the kubelet runs them: exec inside the container; tcpSocket and
//! httpGet from the kubelet itself (pkg/probe/tcp, pkg/probe/http): a TCP
//! connect, an HTTP GET whose status 200–399 is success. The pod shares the
//! host's loopback, so the host is `127.0.0.1`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A probe's timing, with the API defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Probe) -> Timing {
        let secs = |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10),
            timeout: secs(probe.timeout_seconds, 1),
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// A port by number or by the name of one of the container's ports.
fn port(container: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// Runs a tcpSocket or httpGet probe; `None` for an exec probe (the caller
/// runs it inside the container).
pub fn network_probe(container: &Container, probe: &Probe, timeout: Duration) -> Option<bool> {
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = port(container, &tcp.port) else {
            return Some(false);
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        return Some(TcpStream::connect_timeout(&addr, timeout).is_ok());
    }
    if let Some(http) = &probe.http_get {
        let Some(port) = port(container, &http.port) else {
            return Some(false);
        };
        return Some(
            http_get(port, http.path.as_deref().unwrap_or("/"), timeout)
                .is_some_and(|s| (200..400).contains(&s)),
        );
    }
    None
}

fn http_get(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.34\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).ok()?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]).to_string();
    line.split_whitespace().nth(1)?.parse().ok()
}
