//! Hostile YAML inputs, generated (the big ones are not checked in). Shared by
//! pipeline-model's in-process test and the CLI's exit-code test.

/// What c8s must do with an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A located error (exit 1).
    Error,
    /// A documented acceptance (exit 0).
    Accept,
}

/// One hostile input: a file name (its extension hints nothing), the bytes,
/// what it is parsed as (`sidecars` or `pipeline`), and the expectation.
pub struct Hostile {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub kind: &'static str,
    pub expect: Expect,
}

fn h(name: &'static str, kind: &'static str, expect: Expect, bytes: impl Into<Vec<u8>>) -> Hostile {
    Hostile {
        name,
        bytes: bytes.into(),
        kind,
        expect,
    }
}

/// `head` (which anchors `&l0`) followed by nine keys `<key>1`…`<key>9`, each
/// a list of nine aliases of the one before: 9¹⁰ `lol`s once expanded.
fn billion_laughs(head: &str, key: &str) -> String {
    let mut text = String::from(head);
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "{key}{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
        ));
    }
    text
}

/// Every hostile input, small ones first.
pub fn corpus() -> Vec<Hostile> {
    use Expect::*;
    let laughs = billion_laughs(
        "- name: a\n  image: alpine:3\n  args: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
        "  x",
    );
    let laughs_pipeline = billion_laughs(
        "name: p\nrepository: r\nsteps:\n  - name: a\n    image: alpine:3\n    commands: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
        "    env",
    );
    let deep_flow = format!("{}x{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_block: String = (0..10_000)
        .map(|i| format!("{}- \n", " ".repeat(i % 2000)))
        .collect();
    let deep_map: String = (0..10_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .take(3000)
        .collect();
    let mut big = String::from("# a 50 MiB file\n- name: a\n  image: alpine:3\n  args:\n");
    while big.len() < 50 * 1024 * 1024 {
        big.push_str("    - \"padding padding padding padding padding padding padding padding\"\n");
    }
    let long_string = format!("- name: {}\n  image: alpine:3\n", "a".repeat(1 << 20));
    let long_key = format!("- name: a\n  image: alpine:3\n  {}: x\n", "k".repeat(100_000));
    let many_keys: String = std::iter::once("- name: a\n  image: alpine:3\n  env:\n".to_owned())
        .chain((0..100_000).map(|i| format!("    - {{ name: V{i}, value: x }}\n")))
        .collect();
    vec![
        h("alias-bomb.yml", "sidecars", Error, laughs),
        h("alias-bomb-pipeline.yml", "pipeline", Error, laughs_pipeline),
        h("deep-flow.yml", "sidecars", Error, deep_flow),
        h("deep-block.yml", "sidecars", Error, deep_block),
        h("deep-map.yml", "pipeline", Error, deep_map),
        h("huge-50mib.yml", "sidecars", Error, big),
        h("long-string.yml", "sidecars", Error, long_string),
        h("long-key.yml", "sidecars", Error, long_key),
        // 100,000 env vars is valid, just large: accepted within budget.
        h("many-env.yml", "sidecars", Accept, many_keys),
        h(
            "nul-bytes.yml",
            "sidecars",
            Error,
            &b"- name: a\0b\n  image: alpine:3\n"[..],
        ),
        h(
            "invalid-utf8.yml",
            "sidecars",
            Error,
            &b"- name: \xc3\x28\n  image: alpine:3\n"[..],
        ),
        h("tabs.yml", "sidecars", Error, "- name: a\n\timage: alpine:3\n"),
        // A UTF-8 byte order mark is allowed by YAML and ignored.
        h(
            "bom.yml",
            "sidecars",
            Accept,
            "\u{feff}- name: a\n  image: alpine:3\n",
        ),
        h(
            "multi-doc.yml",
            "sidecars",
            Error,
            "- name: a\n  image: alpine:3\n---\n- name: b\n  image: alpine:3\n",
        ),
        h(
            "duplicate-keys.yml",
            "pipeline",
            Error,
            "name: p\nname: q\nrepository: r\nsteps: []\n",
        ),
        h(
            "python-tag.yml",
            "sidecars",
            Error,
            "- name: a\n  image: !!python/object/apply:os.system [\"id\"]\n",
        ),
        // Scalars keep their text: `0x1F` stays "0x1F" and then fails the name rule.
        h(
            "hex-name.yml",
            "sidecars",
            Error,
            "- name: 0x1F\n  image: alpine:3\n",
        ),
        // Unquoted `1.20` stays "1.20" (never 1.2), quoted or not.
        h(
            "version-unquoted.yml",
            "pipeline",
            Accept,
            "name: p\nrepository: r\nmatrix:\n  dimensions:\n    go: [1.20, \"1.21\"]\nsteps:\n  - name: unit\n    image: golang:${{ matrix.go }}\n    commands: [go test]\n",
        ),
        // A quoted number where a number goes is read as that number ("5432" is
        // unambiguous); a word is a type error (see the next case).
        h(
            "port-as-string.yml",
            "sidecars",
            Accept,
            "- name: a\n  image: alpine:3\n  ports:\n    - containerPort: \"5432\"\n",
        ),
        h(
            "port-as-word.yml",
            "sidecars",
            Error,
            "- name: a\n  image: alpine:3\n  ports:\n    - containerPort: http\n",
        ),
        h("empty.yml", "pipeline", Error, ""),
        h("scalar.yml", "pipeline", Error, "just a string\n"),
    ]
}
