//! `c8s validate` for every kind of file: sidecar lists, Concourse task
//! configs and pipelines, told apart by their content (or `--kind`).

use std::fmt;

use c8s_pipeline_model::Errors;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

pub use crate::input::{DirSource, Kind};

/// The top level of a document: a list, or a mapping with these keys.
enum Shape {
    List,
    Mapping(Vec<String>),
    Other,
}

impl<'de> de::Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShapeVisitor;
        impl<'de> Visitor<'de> for ShapeVisitor {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML document")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Shape::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(Shape::Mapping(keys))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
        }
        deserializer.deserialize_any(ShapeVisitor)
    }
}

/// What `text` most likely is: a list is sidecars, a mapping with `steps` a
/// pipeline, a mapping with `run`, `image_resource` or `platform` a task.
/// `None` for any other mapping. Anything else (empty, not YAML, a scalar) is
/// read as sidecars, whose parser then says what is wrong.
pub fn detect_kind(file: &str, text: &str) -> Option<Kind> {
    if let Some(kind) = detect_block_style(text) {
        return Some(kind);
    }
    match c8s_sidecar_core::yaml::from_str::<Shape>(file, text) {
        Ok(Shape::Mapping(_)) if crate::concourse::detect(file, text).is_some() => {
            crate::concourse::detect(file, text)
        }
        Ok(Shape::Mapping(keys)) if keys.iter().any(|k| k == "steps") => Some(Kind::Pipeline),
        Ok(Shape::Mapping(keys))
            if keys
                .iter()
                .any(|k| k == "run" || k == "image_resource" || k == "platform") =>
        {
            Some(Kind::Task)
        }
        Ok(Shape::Mapping(_)) => None,
        _ => Some(Kind::Sidecars),
    }
}

/// A cheap look at block-style YAML, so the file is parsed only once: in
/// block style, lines starting in column 0 are the top-level keys (or list
/// items). `None` when unsure (flow style, no telling key); the full parse decides then.
fn detect_block_style(text: &str) -> Option<Kind> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut significant = text.lines().filter(|l| {
        !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with("---") && !l.starts_with('%')
    });
    let first = significant.next()?;
    if first.starts_with("- ") || first == "-" {
        return Some(Kind::Sidecars);
    }
    if first.starts_with(|c: char| c.is_whitespace() || c == '{' || c == '[') {
        return None;
    }
    let top_level_key = |line: &str| -> Option<String> {
        let (key, _) = line.split_once(':')?;
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        plain.then(|| key.to_owned())
    };
    let keys: Vec<String> = std::iter::once(first)
        .chain(significant)
        .filter(|l| !l.starts_with(char::is_whitespace))
        .filter_map(top_level_key)
        .collect();
    if keys.iter().any(|k| k == "jobs") {
        Some(Kind::Concourse)
    } else if keys.iter().any(|k| k == "task") && keys.iter().any(|k| k == "config" || k == "file") {
        Some(Kind::TaskStep)
    } else if keys.iter().any(|k| k == "steps") {
        Some(Kind::Pipeline)
    } else if keys
        .iter()
        .any(|k| k == "run" || k == "image_resource" || k == "platform")
    {
        Some(Kind::Task)
    } else {
        None
    }
}

/// Like [`detect_kind`], reading an unrecognised mapping as sidecars.
pub fn detect(file: &str, text: &str) -> Kind {
    detect_kind(file, text).unwrap_or(Kind::Sidecars)
}

/// Parses and validates `bytes` as `kind` (detected when `None`); returns
/// the kind and warnings (things accepted that c8s does not do as written).
pub fn validate_with(
    file: &str,
    bytes: &[u8],
    kind: Option<Kind>,
    concourse: &crate::concourse::ConcourseArgs,
) -> Result<(Kind, Vec<String>), Errors> {
    let text = c8s_sidecar_core::yaml::as_utf8(file, bytes).map_err(c8s_pipeline_model::Error::document)?;
    match kind.or_else(|| detect_kind(file, text)) {
        Some(kind @ (Kind::TaskStep | Kind::Concourse)) => {
            crate::concourse::lower(file, text, concourse, kind == Kind::TaskStep).map(|l| (kind, l.warnings))
        }
        // fly execute takes vars for a task config too.
        Some(Kind::Task) => c8s_pipeline_model::parse_task_config_with(file, text, &concourse.vars()?)
            .map(|_| (Kind::Task, Vec::new())),
        other => validate(file, bytes, other).map(|kind| {
            // c8s's own formats: a key kubectl would read as a boolean is said.
            let warnings = match kind {
                Kind::Pipeline | Kind::Sidecars => c8s_pipeline_model::yaml11_key_warnings(file, text),
                _ => Vec::new(),
            };
            (kind, warnings)
        }),
    }
}

/// Parses and validates `bytes` as `kind` (detected when `None`).
pub fn validate(file: &str, bytes: &[u8], kind: Option<Kind>) -> Result<Kind, Errors> {
    let text = c8s_sidecar_core::yaml::as_utf8(file, bytes).map_err(c8s_pipeline_model::Error::document)?;
    let Some(kind) = kind.or_else(|| detect_kind(file, text)) else {
        return Err(Errors::from(c8s_pipeline_model::Error::Syntax {
            at: c8s_sidecar_core::Position::new(file, 1, 1),
            message: "cannot tell what kind of file this is: expected a list of sidecars, a task config \
                      (with run, image_resource or platform), a Concourse task step (task with config or file), \
                      a Concourse pipeline (with jobs) or a pipeline (with steps); use --kind"
                .to_owned(),
        }));
    };
    match kind {
        Kind::Sidecars => c8s_sidecar_core::parse_sidecars(file, text)
            .map(|_| kind)
            .map_err(c8s_sidecar_core::ErrorList::convert),
        Kind::Task => c8s_pipeline_model::parse_task_config(file, text).map(|_| kind),
        Kind::Pipeline => {
            c8s_pipeline_model::parse_pipeline(file, text, &DirSource::beside(file)).map(|_| kind)
        }
        Kind::TaskStep | Kind::Concourse => {
            let args = crate::concourse::ConcourseArgs::default();
            crate::concourse::lower(file, text, &args, kind == Kind::TaskStep).map(|_| kind)
        }
    }
}

/// The bytes an error position refers to, for the snippet under the error:
/// the file itself, or a sidecar file of `file` (a pipeline).
pub fn source_of(file: &str, error_file: &str) -> Option<Vec<u8>> {
    if error_file == file {
        return std::fs::read(file).ok();
    }
    std::fs::read(DirSource::beside(file).resolve(error_file)).ok()
}
