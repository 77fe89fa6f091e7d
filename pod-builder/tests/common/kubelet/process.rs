//! One container as processes on the host: `unshare --mount --pid --fork
//! --mount-proc` gives it its own mount and PID namespaces (its command is
//! PID 1, as under runc), a private /tmp, the volume mounts at their paths,
//! then `setpriv` drops to the security context's UID/GID/groups, no new
//! privileges and no capabilities before exec'ing the command.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::volumes::Mount;

/// A host tool by name, from PATH (panics when missing: run
/// scripts/install-tools.sh).
pub fn host_tool(name: &str) -> PathBuf {
    std::env::split_paths(super::images::HOST_PATH)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is needed by the runtime check: run ./scripts/install-tools.sh"))
}

/// Who the process runs as, from the effective security context.
#[derive(Debug, Clone)]
pub struct Identity {
    pub uid: i64,
    pub gid: i64,
    pub groups: Vec<i64>,
    pub no_new_privs: bool,
    pub drop_all_caps: bool,
}

/// Everything needed to start a container's processes.
#[derive(Debug, Clone)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: String,
    pub mounts: Vec<Mount>,
    pub identity: Identity,
}

/// Single-quotes a word for sh.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl Launch {
    fn setpriv(&self) -> Vec<String> {
        let id = &self.identity;
        let mut out = vec![
            host_tool("setpriv").display().to_string(),
            format!("--reuid={}", id.uid),
            format!("--regid={}", id.gid),
        ];
        if id.groups.is_empty() {
            out.push("--clear-groups".into());
        } else {
            let groups: Vec<String> = id.groups.iter().map(i64::to_string).collect();
            out.push(format!("--groups={}", groups.join(",")));
        }
        if id.no_new_privs {
            out.push("--no-new-privs".into());
        }
        if id.drop_all_caps {
            out.push("--inh-caps=-all".into());
            out.push("--bounding-set=-all".into());
        }
        out.push("--".into());
        out
    }

    /// The script the namespace's first process runs as root before it
    /// becomes the container's command.
    fn setup_script(&self) -> String {
        let mount = host_tool("mount").display().to_string();
        let mkdir = host_tool("mkdir").display().to_string();
        let mut s = String::from("set -e\n");
        // Volume sources may live under /tmp (a checkout in /tmp): bind each one
        // to a private staging tmpfs first, so the private /tmp cannot hide it.
        let stage = "/run/c8s-kubelet-stage";
        s += &format!("{mkdir} -p {stage}\n{mount} -t tmpfs tmpfs {stage}\n");
        for (i, m) in self.mounts.iter().enumerate() {
            let point = if m.source.is_file() {
                format!(": > {stage}/{i}")
            } else {
                format!("{mkdir} {stage}/{i}")
            };
            s += &format!(
                "{point}\n{mount} --bind {} {stage}/{i}\n",
                quote(&m.source.display().to_string())
            );
        }
        s += &format!("{mount} -t tmpfs -o mode=1777 tmpfs /tmp\n");
        for (i, m) in self.mounts.iter().enumerate() {
            let dest = quote(&m.destination);
            if m.source.is_file() {
                // A file (the kubelet's /etc/hosts) is bound onto a file.
                let parent = std::path::Path::new(&m.destination)
                    .parent()
                    .map_or("/".into(), |p| p.display().to_string());
                s += &format!("{mkdir} -p {}\n[ -e {dest} ] || : > {dest}\n", quote(&parent));
            } else {
                s += &format!("{mkdir} -p {dest}\n");
            }
            s += &format!("{mount} --bind {stage}/{i} {dest}\n");
            if m.read_only {
                s += &format!("{mount} -o remount,bind,ro {dest}\n");
            }
        }
        // runc creates a missing working directory.
        s += &format!("{mkdir} -p {0}\ncd {0}\n", quote(&self.workdir));
        // runc makes the container's init a session (and process group) leader.
        let setsid = [host_tool("setsid").display().to_string()];
        let words: Vec<String> = setsid
            .iter()
            .chain(&self.setpriv())
            .chain(&self.argv)
            .map(|w| quote(w))
            .collect();
        s += &format!("exec {}\n", words.join(" "));
        s
    }

    /// Starts the container; stdout and stderr go to `log` (appended).
    pub fn spawn(&self, log: &Path) -> Result<Child, String> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| e.to_string())?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        Command::new(host_tool("unshare"))
            .args([
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "private",
                "--",
            ])
            .arg("/bin/sh")
            .arg("-c")
            .arg(self.setup_script())
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("unshare: {e}"))
    }

    /// Runs `argv` inside the running container (an exec probe): same
    /// namespaces, user and env. Returns whether it exited 0 within `timeout`.
    pub fn exec_in(&self, init_pid: u32, argv: &[String], timeout: Duration) -> bool {
        let child = Command::new(host_tool("nsenter"))
            .arg(format!("--target={init_pid}"))
            .args(["--mount", "--pid", &format!("--wd={}", self.workdir), "--"])
            .args(self.setpriv())
            .args(argv)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else { return false };
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

/// The host PID of the container's PID 1: the child of the `unshare` process.
pub fn init_pid(unshare: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(unshare) {
            return Some(pid);
        }
    }
    None
}

/// Sends `signal` (a `kill -s` name) to a host PID.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new(host_tool("kill"))
        .args(["-s", name, &pid.to_string()])
        .status();
}
