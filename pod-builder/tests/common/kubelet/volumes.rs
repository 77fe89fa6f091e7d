//! Pod volumes on the host, with the ownership and modes the kubelet gives
//! them, and each container's mounts.
//!
//! - emptyDir: a directory created 0777 root:root (pkg/volume/emptydir,
//!   `perm os.FileMode = 0777`).
//! - persistentVolumeClaim: a directory the test provides per claim (a fresh
//!   one is 0755 root:root, like a new ext4 filesystem).
//! - with `fsGroup`, every file of the volume gets group fsGroup, `g+rw`, and
//!   directories `g+x` and setgid (pkg/volume/volume_linux.go
//!   `SetVolumeOwnership`); with `fsGroupChangePolicy: OnRootMismatch` that walk
//!   is skipped when the root already has the right group and mode.
//! - subPath: created by the kubelet with the mode of the volume root before
//!   the container starts (kubelet_pods.go `makeMounts`, `SafeMakeDir`).
//! - secret: the keys the test gives, as files 0644 (defaultMode).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

const SETGID: u32 = 0o2000;

/// One bind mount of a container: host source, container destination.
#[derive(Debug, Clone)]
pub struct Mount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// The pod's volumes by name, set up on the host under `dir`.
pub fn prepare(
    pod: &Pod,
    dir: &Path,
    claims: &BTreeMap<String, PathBuf>,
    secrets: &BTreeMap<(String, String), String>,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let spec = pod.spec.as_ref().ok_or("pod without spec")?;
    let security = spec.security_context.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for volume in spec.volumes.iter().flatten() {
        let path = if volume.empty_dir.is_some() {
            let path = dir.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            set_mode(&path, 0o777)?;
            path
        } else if let Some(pvc) = &volume.persistent_volume_claim {
            let path = match claims.get(&pvc.claim_name) {
                Some(path) => path.clone(),
                None => {
                    let path = dir.join("claims").join(&pvc.claim_name);
                    std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
                    set_mode(&path, 0o755)?;
                    path
                }
            };
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            path
        } else if let Some(secret) = &volume.secret {
            let name = secret.secret_name.clone().unwrap_or_default();
            let path = dir.join("secrets").join(&volume.name);
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            let mode = secret.default_mode.map_or(0o644, |m| m as u32);
            for ((secret_name, key), value) in secrets {
                if *secret_name == name {
                    let file = path.join(key);
                    std::fs::write(&file, value).map_err(|e| e.to_string())?;
                    set_mode(&file, mode)?;
                }
            }
            path
        } else {
            return Err(format!(
                "volume {} has a type the runtime check does not imitate",
                volume.name
            ));
        };
        if let Some(group) = security.fs_group {
            let on_root_mismatch = security.fs_group_change_policy.as_deref() == Some("OnRootMismatch");
            let root_ok =
                std::fs::metadata(&path).map(|m| m.gid() == group as u32 && m.mode() & 0o2070 == 0o2070);
            if !(on_root_mismatch && root_ok.unwrap_or(false)) {
                set_ownership(&path, group as u32)?;
            }
        }
        out.insert(volume.name.clone(), path);
    }
    Ok(out)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// `SetVolumeOwnership`: group fsGroup, g+rw, directories g+x and setgid.
fn set_ownership(path: &Path, group: u32) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    chown(path, None, Some(group)).map_err(|e| format!("chown {}: {e}", path.display()))?;
    let mut mask = 0o660;
    if meta.is_dir() {
        mask |= SETGID | 0o110;
    }
    set_mode(path, (meta.mode() & 0o7777) | mask)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| e.to_string())? {
            set_ownership(&entry.map_err(|e| e.to_string())?.path(), group)?;
        }
    }
    Ok(())
}

/// The container's mounts in list order; subPath directories are created as
/// the kubelet does.
pub fn mounts(container: &Container, volumes: &BTreeMap<String, PathBuf>) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let root = volumes.get(&mount.name).ok_or_else(|| {
            format!(
                "container {} mounts unknown volume {}",
                container.name, mount.name
            )
        })?;
        let source = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let mode = std::fs::metadata(root).map_err(|e| e.to_string())?.mode() & 0o7777;
                let mut path = root.clone();
                for part in Path::new(sub).components() {
                    path.push(part);
                    if !path.exists() {
                        std::fs::create_dir(&path).map_err(|e| format!("subPath {sub}: {e}"))?;
                        set_mode(&path, mode)?;
                    }
                }
                path
            }
            None => root.clone(),
        };
        out.push(Mount {
            source,
            destination: mount.mount_path.clone(),
            read_only: mount.read_only == Some(true),
        });
    }
    Ok(out)
}
