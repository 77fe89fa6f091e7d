//! Field paths such as `[1].ports[0].containerPort`: where in a document a value lives.

use std::fmt;

use serde_derive::{Deserialize, Serialize};

/// One step of a [`FieldPath`]: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Segment {
    /// A mapping key, as written in the document (`containerPort`).
    Key(String),
    /// A zero-based sequence index.
    Index(usize),
}

/// A path from a document's root to one of its values.
///
/// Displays as `sidecars[1].ports[0].containerPort`; the root itself displays
/// as the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The document root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a mapping key.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        Self(segments)
    }

    /// This path extended by a sequence index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// The segments from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The path without its last segment, or `None` at the root.
    pub fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(Self(rest.to_vec()))
    }

    /// The part of this path after `prefix`, if this path starts with it.
    pub fn strip_prefix(&self, prefix: &FieldPath) -> Option<FieldPath> {
        self.0
            .strip_prefix(prefix.0.as_slice())
            .map(|rest| Self(rest.to_vec()))
    }

    /// Whether this is the document root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_a_user_writes_it() {
        let path = FieldPath::root()
            .key("sidecars")
            .index(1)
            .key("ports")
            .index(0)
            .key("containerPort");
        assert_eq!(path.to_string(), "sidecars[1].ports[0].containerPort");
        assert_eq!(FieldPath::root().index(2).key("name").to_string(), "[2].name");
        let base = FieldPath::root().key("sidecars").index(1);
        assert_eq!(
            path.strip_prefix(&base).map(|p| p.to_string()).as_deref(),
            Some("ports[0].containerPort")
        );
        assert_eq!(
            path.parent().map(|p| p.to_string()).as_deref(),
            Some("sidecars[1].ports[0]")
        );
    }
}
