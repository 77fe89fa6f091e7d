//! `${{ matrix.X }}` substitution in the fields that allow it.

use crate::error::Problem;
use c8s_sidecar_core::SidecarConfig;

use crate::matrix::substitute;
use crate::ordered::OrderedMap;

/// A copy of `sidecar` with `${{ matrix.X }}` replaced in its image,
/// command, args and env values.
pub fn substitute_sidecar(
    sidecar: &SidecarConfig,
    values: &OrderedMap<String>,
) -> Result<SidecarConfig, Problem> {
    let mut out = sidecar.clone();
    out.image = substitute(&sidecar.image, values)?;
    out.command = substitute_all(&sidecar.command, values)?;
    out.args = substitute_all(&sidecar.args, values)?;
    for env in &mut out.env {
        if let Some(value) = &env.value {
            env.value = Some(substitute(value, values)?);
        }
    }
    Ok(out)
}

/// Each text with `${{ matrix.X }}` replaced.
pub fn substitute_all(texts: &[String], values: &OrderedMap<String>) -> Result<Vec<String>, Problem> {
    texts.iter().map(|t| substitute(t, values)).collect()
}
