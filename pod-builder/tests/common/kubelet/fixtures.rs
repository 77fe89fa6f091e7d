//! What the runtime cases share: a local origin repository to clone (made
//! with `git`), and stand-ins for the example images that are not host tools.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use c8s_pod_builder::RunContext;
use c8s_pod_builder::model::{PlanIdentity, TaskPlan};

use super::{Image, Kubelet};

/// The context the runtime cases render with: run 7 of `origin`'s commit on `main`.
pub fn origin_context(origin: &Origin) -> RunContext {
    RunContext::new("run-1", 7)
        .with_repository(&origin.url)
        .with_commit(&origin.commit)
        .with_branch("main")
}

/// A step that runs `script` under `sh -ec`.
pub fn shell_step(script: &str) -> TaskPlan {
    let mut plan = TaskPlan::new(PlanIdentity::new("shop", "unit"), "golang:1.23");
    plan.command = vec!["sh".into(), "-ec".into(), script.into()];
    plan
}

/// A repository served by `git daemon` on the loopback, with one commit on
/// `main`; the daemon ends when this is dropped. (A local path would not do:
/// git refuses a repository another UID owns, which a real remote never is.)
#[derive(Debug)]
pub struct Origin {
    pub url: String,
    pub commit: String,
    daemon: Child,
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(super::process::host_tool("git"))
        .current_dir(dir)
        .args([
            "-c",
            "user.name=c8s",
            "-c",
            "user.email=c8s@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The bare repository (made once per test process) and its commit.
fn repository() -> (PathBuf, String) {
    static REPO: OnceLock<(PathBuf, String)> = OnceLock::new();
    REPO.get_or_init(|| {
        let dir = super::scratch_root().join(format!("kubelet-origin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let work = dir.join("work");
        std::fs::create_dir_all(work.join("cmd/orders")).expect("origin dir");
        std::fs::write(work.join("go.mod"), "module example.com/orders\n\ngo 1.23\n").expect("write");
        std::fs::write(
            work.join("cmd/orders/main.go"),
            "package main\n\nfunc main() {}\n",
        )
        .expect("write");
        git(&work, &["init", "-q"]);
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "orders"]);
        let commit = git(&work, &["rev-parse", "HEAD"]);
        git(&dir, &["clone", "-q", "--bare", "work", "orders.git"]);
        (dir, commit)
    })
    .clone()
}

fn git_daemon() -> PathBuf {
    let out = Command::new(super::process::host_tool("git"))
        .arg("--exec-path")
        .output()
        .expect("git --exec-path");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("git-daemon")
}

/// Serves the origin; hold the value while pods clone from it.
pub fn origin() -> Origin {
    let (dir, commit) = repository();
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        // `git-daemon` itself, not `git daemon` (a parent that would leave it
        // running when killed).
        let daemon = Command::new(git_daemon())
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", dir.display()))
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        let mut origin = Origin {
            url: format!("git://127.0.0.1:{port}/orders.git"),
            commit: commit.clone(),
            daemon,
        };
        for _ in 0..100 {
            if let Ok(Some(_)) = origin.daemon.try_wait() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return origin;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    panic!("git daemon did not start")
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into(), "entrypoint".into()]
}

/// The kubelet with stand-ins for every example image that is not a host
/// tool: the metrics agent and the WireMock payments mock are busybox httpd
/// answering their health paths on the port their args name, ending on
/// SIGTERM as the JVM and Go programs they stand in for do.
pub fn example_kubelet() -> Kubelet {
    let metrics = r#"port="${1#--listen=:}"; mkdir -p /tmp/www; echo ok > /tmp/www/healthz
httpd -f -p "127.0.0.1:$port" -h /tmp/www & trap 'kill $!; exit 0' TERM; wait"#;
    let wiremock = r#"[ -n "$API_TOKEN" ] || { echo "no API_TOKEN"; exit 1; }
mkdir -p /tmp/www/__admin; echo ok > /tmp/www/__admin/health
httpd -f -p "127.0.0.1:$2" -h /tmp/www & trap 'kill $!; exit 0' TERM; wait"#;
    let busybox = super::images::busybox_bin();
    Kubelet::default()
        .image(
            "ghcr.io/example/metrics-agent",
            Image {
                entrypoint: sh(metrics),
                path: vec![busybox.clone()],
                ..Image::default()
            },
        )
        .image(
            "wiremock/wiremock",
            Image {
                entrypoint: sh(wiremock),
                path: vec![busybox],
                ..Image::default()
            },
        )
        .secret("ci-secrets", "payments-token", "payments-token-value")
        .secret("orders-ci", "stripe-key", "stripe-key-value")
        .secret("registry-credentials", "token", "registry-token-value")
}

/// A stand-in service image: `script` as entrypoint over busybox, ending on
/// SIGTERM as a well-behaved service does.
pub fn service(script: &str) -> Image {
    let script = format!("trap 'exit 0' TERM\n{script}\nwhile :; do sleep 0.2; done");
    Image {
        entrypoint: vec!["sh".into(), "-c".into(), script],
        path: vec![super::images::busybox_bin()],
        ..Image::default()
    }
}

/// The origin over smart HTTP behind basic auth (busybox httpd running
/// `git http-backend` as CGI), for the git credentials Secret; the server
/// ends when this is dropped.
#[derive(Debug)]
pub struct PrivateOrigin {
    pub url: String,
    pub commit: String,
    server: Child,
}

impl Drop for PrivateOrigin {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Serves the origin to `user`/`password` only.
pub fn private_origin(user: &str, password: &str) -> PrivateOrigin {
    use std::os::unix::fs::PermissionsExt;
    let (dir, commit) = repository();
    let www = dir.join(format!("www-{user}"));
    std::fs::create_dir_all(www.join("cgi-bin")).expect("www");
    let cgi = www.join("cgi-bin/git");
    let script = format!(
        "#!/bin/sh\nexport GIT_PROJECT_ROOT='{}' GIT_HTTP_EXPORT_ALL=1\nexec '{}' http-backend\n",
        dir.display(),
        super::process::host_tool("git").display()
    );
    std::fs::write(&cgi, script).expect("cgi");
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let conf = dir.join(format!("httpd-{user}.conf"));
    std::fs::write(&conf, format!("/cgi-bin:{user}:{password}\n")).expect("httpd.conf");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let server = Command::new(super::process::host_tool("busybox"))
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}")])
        .arg("-h")
        .arg(&www)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("busybox httpd");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    PrivateOrigin {
        url: format!("http://127.0.0.1:{port}/cgi-bin/git/orders.git"),
        commit,
        server,
    }
}
