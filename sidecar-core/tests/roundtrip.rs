//! Round trips and robustness: YAML → struct → JSON → struct is lossless for
//! every valid config, and no input bytes make the parser panic.

use c8s_sidecar_core::{
    EnvVar, Port, PortRef, Protocol, Quantity, Readiness, ReadinessProbe, SidecarConfig, parse_sidecars,
    parse_sidecars_bytes, validate_sidecars,
};
use proptest::prelude::*;

#[test]
fn json_round_trip_of_the_examples() {
    for file in ["postgres.yml", "services.yml", "monitoring-agent.yml"] {
        let path = format!("{}/../examples/sidecars/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("example exists");
        let sidecars = parse_sidecars(&path, &text).expect("example is valid");
        let json = serde_json::to_string(&sidecars).expect("serialises");
        let back: Vec<SidecarConfig> = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, sidecars, "{file}");
    }
}

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,20}[a-z0-9]".prop_filter("not reserved", |s| {
        !["main", "git-clone", "artifact-helper"].contains(&s.as_str()) && !s.starts_with("c8s-")
    })
}

fn quantity() -> impl Strategy<Value = (Quantity, Quantity)> {
    (
        1u32..4000,
        0u32..4000,
        prop::sample::select(vec!["m", "", "Mi", "Ki", "k"]),
    )
        .prop_map(|(a, extra, suffix)| {
            let req = Quantity::parse(&format!("{a}{suffix}")).expect("valid");
            let lim = Quantity::parse(&format!("{}{suffix}", a + extra)).expect("valid");
            (req, lim)
        })
}

fn readiness(first_port: Option<i32>) -> impl Strategy<Value = Readiness> {
    let probe =
        (0..3usize, 1i32..10, 1i32..300, "/[a-z]{0,8}").prop_map(move |(kind, period, timeout, path)| {
            let port = PortRef::Number(first_port.unwrap_or(8080));
            let probe = match kind {
                0 => ReadinessProbe::tcp(port),
                1 => ReadinessProbe::http(path, port),
                _ => ReadinessProbe::exec(["true"]),
            };
            Readiness::Probe(probe.with_period_seconds(period).with_timeout_seconds(timeout))
        });
    prop_oneof![Just(Readiness::Default), Just(Readiness::Disabled), probe]
}

prop_compose! {
    fn sidecar(index: usize)(
        name in label(),
        tag in "[a-z0-9][a-z0-9.-]{0,10}",
        args in prop::collection::vec("[ -~]{0,12}", 0..3),
        env in prop::collection::vec(("[A-Z_][A-Z0-9_]{0,8}", "[ -~]{0,10}", any::<bool>()), 0..4),
        port_count in 0usize..3,
        (cpu_req, cpu_lim) in quantity(),
        uid in prop::option::of(1i64..65535),
        ready in readiness(Some(10_000 + (index as i32) * 10)),
    ) -> SidecarConfig {
        let mut s = SidecarConfig::new(format!("{name}-{index}"), format!("registry.example.com/{name}:{tag}"));
        s.args = args;
        let mut seen = std::collections::BTreeSet::new();
        for (n, v, secret) in env {
            if !seen.insert(n.clone()) { continue; }
            s.env.push(if secret { EnvVar::secret(n, "ci-secrets", "token") } else { EnvVar::value(n, v) });
        }
        for p in 0..port_count {
            let mut port = Port::tcp(10_000 + (index as i32) * 10 + p as i32);
            if p == 1 { port.protocol = Protocol::Udp; }
            s.ports.push(port);
        }
        if port_count == 0 && matches!(&ready, Readiness::Probe(p) if p.tcp_socket.is_some() || p.http_get.is_some()) {
            s.readiness = Readiness::Default;
        } else {
            s.readiness = ready;
        }
        s.resources.requests.insert("cpu".into(), cpu_req);
        s.resources.limits.insert("cpu".into(), cpu_lim);
        s.run_as_user = uid;
        s
    }
}

fn sidecars() -> impl Strategy<Value = Vec<SidecarConfig>> {
    (1usize..5).prop_flat_map(|n| (0..n).map(sidecar).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_valid_config_survives_yaml_and_json(list in sidecars()) {
        prop_assert!(validate_sidecars(&list).is_ok(), "{:?}", validate_sidecars(&list));
        let yaml = serde_saphyr::to_string(&list).expect("serialises to YAML");
        let from_yaml = parse_sidecars("gen.yml", &yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(&from_yaml, &list);
        let json = serde_json::to_string(&from_yaml).expect("serialises to JSON");
        let from_json: Vec<SidecarConfig> = serde_json::from_str(&json).expect("parses JSON");
        prop_assert_eq!(from_json, list);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_sidecars_bytes("fuzz.yml", &bytes);
    }

    #[test]
    fn arbitrary_yamlish_text_never_panics(text in "[-:\\[\\]{}&*!|>'\" a-z0-9\n]{0,300}") {
        let _ = parse_sidecars("fuzz.yml", &text);
    }
}
