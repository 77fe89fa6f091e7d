//! The S3 server of the log archive's tests (`scripts/s3/up.sh`, which
//! prints the `C8S_TEST_S3_*` variables read here).

use std::io::Write;
use std::process::{Command, Stdio};

/// The variable `name` that `scripts/s3/up.sh` exports; panics naming it
/// when unset, so a test without the server fails, never passes.
pub fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run `eval \"$(scripts/s3/up.sh)\"` first"))
}

/// The server's credentials as the AWS environment variables `c8s` reads
/// for its log archive.
pub fn credentials_env() -> [(&'static str, String); 2] {
    [
        ("AWS_ACCESS_KEY_ID", var("C8S_TEST_S3_ACCESS_KEY")),
        ("AWS_SECRET_ACCESS_KEY", var("C8S_TEST_S3_SECRET_KEY")),
    ]
}

/// Creates `bucket` with `weed shell`'s `s3.bucket.create` (object_store has
/// no CreateBucket, and the server creates no bucket on upload).
pub fn create_bucket(bucket: &str) {
    let mut shell = Command::new(var("C8S_TEST_S3_WEED"))
        .args(["shell", &format!("-master={}", var("C8S_TEST_S3_MASTER"))])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weed shell starts");
    let mut stdin = shell.stdin.take().expect("stdin");
    writeln!(stdin, "s3.bucket.create -name {bucket}").expect("write to weed shell");
    drop(stdin);
    let out = shell.wait_with_output().expect("weed shell ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("created bucket {bucket}")),
        "weed shell did not create {bucket}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
