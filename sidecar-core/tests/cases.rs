//! Data-driven tests: each `tests/cases/*.yml` is parsed and validated as a
//! sidecar file; the snapshot holds what a user would see — every error, or the
//! parsed sidecars as JSON.

use c8s_sidecar_core::parse_sidecars_bytes;

fn check(name: &str, bytes: &[u8]) -> String {
    match parse_sidecars_bytes(name, bytes) {
        Ok(sidecars) => {
            let json = serde_json::to_string_pretty(&sidecars).unwrap_or_default();
            format!("ok: {} sidecar(s)\n{json}\n", sidecars.len())
        }
        Err(errors) => format!("{errors}\n"),
    }
}

#[test]
fn cases() {
    insta::glob!("cases/*.yml", |path| {
        let bytes = std::fs::read(path).unwrap_or_default();
        let name = format!(
            "cases/{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
        );
        insta::assert_snapshot!(check(&name, &bytes));
    });
}
