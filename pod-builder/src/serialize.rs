//! Canonical serialisation: the exact bytes `c8s render` prints, so that a
//! downstream tool's snapshots match what its users see. YAML goes through
//! serde-saphyr (this module is the only place that knows), JSON through
//! serde_json; k8s-openapi fixes the field order and maps are `BTreeMap`s, so
//! the same objects always give the same bytes.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde::ser::Serialize;
use serde_derive::Serialize;

use crate::Error;

/// A rendered object of either kind, for mixed lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    /// A Pod.
    Pod(Box<Pod>),
    /// A Job.
    Job(Box<Job>),
}

impl From<Pod> for Object {
    fn from(pod: Pod) -> Self {
        Object::Pod(Box::new(pod))
    }
}

impl From<Job> for Object {
    fn from(job: Job) -> Self {
        Object::Job(Box::new(job))
    }
}

fn yaml_options() -> serde_saphyr::SerializerOptions {
    // YAML 1.1-style quoting stays on: kubectl's parser treats `on`, `yes`, `0x1` as non-strings.
    serde_saphyr::ser_options! {
        indent_step: 2,
        compact_list_indent: true,
    }
}

fn yaml_error(e: impl std::fmt::Display) -> Error {
    Error::Serialize {
        format: "yaml",
        reason: e.to_string(),
    }
}

fn json_error(e: impl std::fmt::Display) -> Error {
    Error::Serialize {
        format: "json",
        reason: e.to_string(),
    }
}

/// One object as a YAML document (no leading `---`, ending in a newline).
pub fn to_canonical_yaml<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_saphyr::to_string_with_options(value, yaml_options()).map_err(yaml_error)
}

/// Several objects as a multi-document YAML stream (`---` between documents),
/// as `kubectl apply -f -` reads it.
pub fn to_canonical_yaml_stream<T: Serialize>(values: &[T]) -> Result<String, Error> {
    let mut stream = YamlStream::new();
    for value in values {
        stream.push(value)?;
    }
    Ok(stream.finish())
}

/// A multi-document YAML stream built one object at a time, so a caller can
/// render and serialise each object and drop it: the same bytes as
/// [`to_canonical_yaml_stream`] over all of them.
///
/// ```
/// use c8s_pod_builder::serialize::{YamlStream, to_canonical_yaml_stream};
/// let mut stream = YamlStream::new();
/// stream.push(&vec![1])?;
/// stream.push(&vec![2])?;
/// assert_eq!(stream.finish(), to_canonical_yaml_stream(&[vec![1], vec![2]])?);
/// # Ok::<(), c8s_pod_builder::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct YamlStream {
    text: String,
    documents: usize,
}

impl YamlStream {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `value` as the next document.
    pub fn push<T: Serialize>(&mut self, value: &T) -> Result<(), Error> {
        if self.documents > 0 {
            self.text.push_str("---\n");
        }
        self.documents += 1;
        serde_saphyr::to_fmt_writer_with_options(&mut self.text, value, yaml_options()).map_err(yaml_error)
    }

    /// The stream's text.
    pub fn finish(self) -> String {
        self.text
    }
}

/// One object as pretty JSON ending in a newline.
pub fn to_canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let mut text = serde_json::to_string_pretty(value).map_err(json_error)?;
    text.push('\n');
    Ok(text)
}

/// Several objects as a JSON `List` (`apiVersion: v1`, `kind: List`).
pub fn to_canonical_json_list<T: Serialize>(values: &[T]) -> Result<String, Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct List<'a, T> {
        api_version: &'static str,
        kind: &'static str,
        items: &'a [T],
    }
    to_canonical_json(&List {
        api_version: "v1",
        kind: "List",
        items: values,
    })
}
