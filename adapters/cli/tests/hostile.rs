//! `c8s validate` and `c8s render` on every hostile input: exit 1 with a
//! located message (or 0 for a documented acceptance), never 101 (a panic).

#[path = "../../../pipeline-model/tests/hostile/corpus.rs"]
mod corpus;

mod common;

use corpus::Expect;

#[test]
fn hostile_files_never_panic_the_cli() {
    let dir = std::env::temp_dir().join(format!("c8s-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for input in corpus::corpus() {
        let path = dir.join(input.name);
        std::fs::write(&path, &input.bytes).expect("write hostile file");
        let path = path.to_string_lossy().into_owned();
        for command in ["validate", "render"] {
            let out = common::c8s(&[command, "--kind", input.kind, &path]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let expected = match input.expect {
                Expect::Accept => 0,
                Expect::Error => 1,
            };
            assert_eq!(
                out.status.code(),
                Some(expected),
                "{command} {}: {stderr}",
                input.name
            );
            if expected == 1 {
                assert!(
                    stderr.contains(&format!("error: {path}")),
                    "{command} {}: not located: {stderr}",
                    input.name
                );
                assert!(
                    stderr.len() < 20_000,
                    "{command} {}: {} bytes of errors",
                    input.name,
                    stderr.len()
                );
            }
        }
        let _ = std::fs::remove_file(dir.join(input.name));
    }
}
