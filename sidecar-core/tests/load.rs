//! Loading several sidecar files for one pod through the read-bytes trait.

use c8s_sidecar_core::{Error, MemorySource, Problem, load_sidecar_files};

const PG: &str = "- name: postgres\n  image: postgres:16\n  ports: [{ containerPort: 5432 }]\n";
const REDIS: &str = "- name: redis\n  image: redis:7\n  ports: [{ containerPort: 6379 }]\n";

#[test]
fn aggregates_sidecars_from_several_files_in_order() {
    let source = MemorySource::new()
        .with("ci/pg.yml", PG)
        .with("ci/redis.yml", REDIS);
    let sidecars = load_sidecar_files(&source, &["ci/redis.yml", "ci/pg.yml"]).expect("valid files");
    let names: Vec<_> = sidecars.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["redis", "postgres"]);
}

#[test]
fn missing_file_is_named() {
    let source = MemorySource::new().with("ci/pg.yml", PG);
    let errors = load_sidecar_files(&source, &["ci/pg.yml", "ci/missing.yml"]).expect_err("missing");
    assert_eq!(errors.to_string(), "ci/missing.yml: cannot read: file not found");
    assert!(matches!(&errors.as_slice()[0], Error::Read { file, .. } if file == "ci/missing.yml"));
}

#[test]
fn invalid_yaml_is_named_with_its_position() {
    let source = MemorySource::new()
        .with("ci/pg.yml", PG)
        .with("ci/bad.yml", "- name: x\n  image: [\n");
    let errors = load_sidecar_files(&source, &["ci/pg.yml", "ci/bad.yml"]).expect_err("bad yaml");
    let text = errors.to_string();
    assert!(text.starts_with("ci/bad.yml:2:"), "{text}");
}

#[test]
fn duplicate_across_files_names_both_files() {
    let other = "- name: cache\n  image: redis:7\n- name: postgres\n  image: postgres:15\n";
    let source = MemorySource::new()
        .with("ci/pg.yml", PG)
        .with("ci/other.yml", other);
    let errors = load_sidecar_files(&source, &["ci/pg.yml", "ci/other.yml"]).expect_err("duplicate");
    assert_eq!(
        errors.to_string(),
        "ci/other.yml:3:3: sidecar \"postgres\": name: sidecar \"postgres\" is already defined at ci/pg.yml:1:3"
    );
}

#[test]
fn port_conflict_across_files() {
    let replica = "- name: pg-replica\n  image: postgres:16\n  ports:\n    - containerPort: 5432\n";
    let source = MemorySource::new()
        .with("ci/pg.yml", PG)
        .with("ci/replica.yml", replica);
    let errors = load_sidecar_files(&source, &["ci/pg.yml", "ci/replica.yml"]).expect_err("conflict");
    assert_eq!(
        errors.to_string(),
        "ci/replica.yml:4:7: sidecar \"pg-replica\": ports[0]: port 5432/TCP is already used by sidecar \"postgres\""
    );
    assert!(matches!(
        errors.as_slice()[0].problem(),
        Some(Problem::PortConflict { port: 5432, .. })
    ));
}

#[test]
fn reports_every_problem_of_every_file() {
    let bad = "- name: Bad\n  image: \"\"\n";
    let source = MemorySource::new().with("a.yml", bad).with("b.yml", bad);
    let errors = load_sidecar_files(&source, &["a.yml", "b.yml", "c.yml"]).expect_err("bad");
    let files: Vec<String> = errors.iter().map(|e| e.position().file).collect();
    // b.yml also repeats the name "Bad" from a.yml.
    assert_eq!(files, ["c.yml", "a.yml", "a.yml", "b.yml", "b.yml", "b.yml"]);
}

#[test]
fn invalid_utf8_is_a_located_error() {
    let source = MemorySource::new().with("bin.yml", b"- name: a\xff\n".to_vec());
    let errors = load_sidecar_files(&source, &["bin.yml"]).expect_err("utf8");
    assert_eq!(errors.to_string(), "bin.yml:1:10: the file is not valid UTF-8");
}
