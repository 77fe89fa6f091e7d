//! `retries`: how often a step is run again after it failed, and on which
//! failures — `retries: 2`, or `{ limit: 2, when: [infrastructure] }`.
//!
//! The key was once `on`; c8s still reads it, but YAML 1.1 readers —
//! kubectl and Go's `sigs.k8s.io/yaml`, PyYAML — read the key `on` as the
//! boolean `true` (<https://yaml.org/type/bool.html>), so a pipeline applied
//! through kubectl lost it. No key of a c8s format is a YAML 1.1 boolean word.
//!
//! These are the user's retries, counted apart from the runner's own retries
//! of transient faults (a pod evicted or an image pull backing off is retried
//! by the runner first, within its own budget; only then do the user's count).
//!
//! ```
//! use c8s_pipeline_model::{RetryCause, Retries};
//! let r: Retries = serde_json::from_str(r#"{ "limit": 2, "when": ["infrastructure"] }"#).unwrap();
//! assert!(r.retries_on(RetryCause::Infrastructure));
//! assert!(!r.retries_on(RetryCause::Error));
//! let any: Retries = serde_json::from_str("3").unwrap();
//! assert_eq!(any.limit, 3);
//! assert!(any.retries_on(RetryCause::Error));
//! ```

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use serde_derive::{Deserialize, Serialize};

/// The most retries a step may declare (Buildkite's automatic-retry limit):
/// past that a step is broken, not flaky.
pub const MAX_RETRIES: u32 = 10;

/// A step's retries: at most `limit` more attempts, after the failures `when` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Retries {
    /// How many times the step may run again (0: never).
    pub limit: u32,
    /// Which failures are retried.
    pub when: RetryOn,
}

/// Which failures a step's retries cover.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryOn {
    /// Every failure except a timeout: `when: any` (the default, as in Tekton and GitLab).
    Any,
    /// Only these causes: `when: [infrastructure]`.
    Only(Vec<RetryCause>),
}

/// Why an attempt failed, as far as retries care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum RetryCause {
    /// The pod, not the step: evicted or preempted, node lost, image pull failed.
    Infrastructure,
    /// `main` ran and failed: a non-zero exit or killed for memory.
    Error,
}

impl Retries {
    /// `limit` retries after any failure.
    pub fn any(limit: u32) -> Self {
        Retries {
            limit,
            when: RetryOn::Any,
        }
    }

    /// `limit` retries after infrastructure failures only.
    pub fn infrastructure(limit: u32) -> Self {
        Retries {
            limit,
            when: RetryOn::Only(vec![RetryCause::Infrastructure]),
        }
    }

    /// Whether a failure of this cause is retried (budget aside).
    pub fn retries_on(&self, cause: RetryCause) -> bool {
        match &self.when {
            RetryOn::Any => true,
            RetryOn::Only(causes) => causes.contains(&cause),
        }
    }

    /// Whether attempt failures of `cause` get another attempt when `used`
    /// retries are spent already.
    pub fn allows(&self, cause: RetryCause, used: u32) -> bool {
        used < self.limit && self.retries_on(cause)
    }
}

impl Serialize for RetryOn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RetryOn::Any => serializer.serialize_str("any"),
            RetryOn::Only(causes) => causes.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RetryOn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct On;
        impl<'de> Visitor<'de> for On {
            type Value = RetryOn;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`any` or a list of `infrastructure`, `error`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RetryOn, E> {
                match v {
                    "any" => Ok(RetryOn::Any),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<RetryOn, A::Error> {
                let mut causes = Vec::<RetryCause>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                causes.sort();
                causes.dedup();
                Ok(RetryOn::Only(causes))
            }
        }
        deserializer.deserialize_any(On)
    }
}

/// The long form, strict: `{ limit, when }` (or `on`, its old name).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetriesMap {
    limit: u32,
    #[serde(default)]
    when: Option<RetryOn>,
    #[serde(default)]
    on: Option<RetryOn>,
}

impl<'de> Deserialize<'de> for Retries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> Visitor<'de> for Form {
            type Value = Retries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of retries or `{ limit: N, when: any | [infrastructure, error] }`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Retries, E> {
                u32::try_from(v)
                    .map(Retries::any)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Retries, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Retries, A::Error> {
                let m = RetriesMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let when = match (m.when, m.on) {
                    (Some(_), Some(_)) => {
                        return Err(de::Error::custom(
                            "`when` and `on` are one setting (`on` is its old name): write `when` only",
                        ));
                    }
                    (Some(when), None) | (None, Some(when)) => when,
                    (None, None) => RetryOn::Any,
                };
                Ok(Retries { limit: m.limit, when })
            }
        }
        deserializer.deserialize_any(Form)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Retries {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Retries".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "How often the step runs again after it failed: a number (after any failure) or { limit, when }",
            "anyOf": [
                { "type": "integer", "minimum": 0, "maximum": MAX_RETRIES },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["limit"],
                    "properties": {
                        "limit": { "type": "integer", "minimum": 0, "maximum": MAX_RETRIES },
                        "when": {
                            "anyOf": [
                                { "type": "string", "enum": ["any"] },
                                { "type": "array", "items": { "type": "string", "enum": ["infrastructure", "error"] } }
                            ]
                        },
                        "on": {
                            "description": "The old name of `when` (YAML 1.1 readers such as kubectl read this key as `true`): write `when`",
                            "deprecated": true,
                            "anyOf": [
                                { "type": "string", "enum": ["any"] },
                                { "type": "array", "items": { "type": "string", "enum": ["infrastructure", "error"] } }
                            ]
                        }
                    }
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_read_and_round_trip() {
        let short: Retries = serde_json::from_str("2").expect("short form");
        assert_eq!(short, Retries::any(2));
        let long: Retries = serde_json::from_str(r#"{"limit":1,"when":["infrastructure","infrastructure"]}"#)
            .expect("long form");
        assert_eq!(long, Retries::infrastructure(1));
        let json = serde_json::to_string(&long).expect("serialises");
        assert_eq!(json, r#"{"limit":1,"when":["infrastructure"]}"#);
        // The old name still reads, and is written as the new one.
        let old: Retries = serde_json::from_str(r#"{"limit":1,"on":["infrastructure"]}"#).expect("old name");
        assert_eq!(old, long);
        assert_eq!(serde_json::from_str::<Retries>(&json).expect("round trip"), long);
        assert!(!long.allows(RetryCause::Infrastructure, 1));
        assert!(long.allows(RetryCause::Infrastructure, 0));
    }

    #[test]
    fn bad_forms_are_refused_with_what_is_expected() {
        for (text, expected) in [
            ("-1", "a number of retries"),
            (r#"{"limit":1,"when":"sometimes"}"#, "`any` or a list"),
            (
                r#"{"limit":1,"when":["network"]}"#,
                "expected `infrastructure` or `error`",
            ),
            (r#"{"limit":1,"if":"always"}"#, "unknown field `if`"),
            (r#"{"limit":1,"true":"any"}"#, "unknown field `true`"),
            (r#"{"limit":1,"when":"any","on":"any"}"#, "write `when` only"),
            (r#"{"when":"any"}"#, "missing field `limit`"),
        ] {
            let error = serde_json::from_str::<Retries>(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
