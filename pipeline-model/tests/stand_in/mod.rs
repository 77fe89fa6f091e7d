//! A stand-in for a resource type's image: scripts at a directory that
//! replaces `/opt/resource` and a workspace that replaces `/workspace`, so
//! c8s's resource scripts run under the host's `sh`.

use std::path::PathBuf;

/// A scratch directory with the stand-in's scripts and its workspace
/// (removed when dropped).
pub struct StandIn {
    dir: PathBuf,
    bin: PathBuf,
    /// What stands for `/workspace`.
    pub workspace: PathBuf,
}

impl StandIn {
    /// A fresh stand-in, its directory named after `name`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("c8s-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bin = dir.join("resource");
        let workspace = dir.join("workspace");
        std::fs::create_dir_all(&bin).expect("dir");
        std::fs::create_dir_all(&workspace).expect("dir");
        Self { dir, bin, workspace }
    }

    /// Writes the executable `/opt/resource/NAME`.
    pub fn write(&self, name: &str, text: &str) {
        let path = self.bin.join(name);
        std::fs::write(&path, text).expect("script");
        let status = std::process::Command::new("chmod")
            .args(["+x", path.to_str().expect("path")])
            .status()
            .expect("chmod");
        assert!(status.success());
    }

    /// Runs `script` under `sh -c` with `args` and `env`, its paths moved
    /// to the stand-in's.
    pub fn run(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let script = script
            .replace("/opt/resource", self.bin.to_str().expect("path"))
            .replace("/workspace", self.workspace.to_str().expect("path"));
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("sh runs")
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
