//! JSON Schema of the sidecar file format, for editors (`c8s schema sidecars`).

use crate::types::SidecarConfig;

/// The JSON Schema (draft 2020-12) of a sidecar file: a list of sidecars.
pub fn sidecar_file_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Vec<SidecarConfig>);
    schema.insert("title".to_owned(), "c8s sidecar file".into());
    schema.insert(
        "description".to_owned(),
        "A list of sidecar service containers that run beside a CI task's main container.".into(),
    );
    schema.to_value()
}
