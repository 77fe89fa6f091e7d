//! Matrix expansion: the cartesian product of the dimensions (in the order
//! written), minus `exclude`, plus `include`, with a stable short id per
//! combination; and `${{ matrix.X }}` substitution.

use crate::error::Problem;
use std::collections::BTreeMap;

use serde_derive::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ordered::OrderedMap;

/// The default cap on the number of combinations a matrix may expand to.
pub const DEFAULT_MAX_COMBINATIONS: usize = 256;

/// Above this many product entries, exclusions are not enumerated: the
/// matrix is reported too large at its product size.
const ENUMERATION_LIMIT: u128 = 1_000_000;

/// A build matrix: named dimensions and their values, with exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Matrix {
    /// Dimension names and their values, in the order written.
    pub dimensions: OrderedMap<Vec<String>>,
    /// Partial combinations to remove: every combination whose values agree
    /// with all of an entry's pairs is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<OrderedMap<String>>,
    /// Complete combinations to add at the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<OrderedMap<String>>,
}

/// One combination of matrix values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Combination {
    /// Stable short id: the first 6 hex digits of the SHA-256 of the sorted
    /// `name=value` lines. The same values always give the same id.
    pub id: String,
    /// The values, in dimension order.
    pub values: OrderedMap<String>,
}

impl Combination {
    /// A combination of `values`, with its id computed.
    pub fn new(values: OrderedMap<String>) -> Self {
        // Keys are unique, so sorting the pairs sorts by key.
        let mut sorted: Vec<(&str, &str)> = values.iter().map(|(k, v)| (k, v.as_str())).collect();
        sorted.sort_unstable();
        let mut hasher = Sha256::new();
        for (k, v) in &sorted {
            hasher.update(k.as_bytes());
            hasher.update(b"=");
            hasher.update(v.as_bytes());
            hasher.update(b"\n");
        }
        let digest = hasher.finalize();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let id = digest
            .iter()
            .take(3)
            .flat_map(|b| {
                [
                    char::from(HEX[usize::from(b >> 4)]),
                    char::from(HEX[usize::from(b & 15)]),
                ]
            })
            .collect();
        Self { id, values }
    }

    /// The values sorted by dimension name (as in [`PlanIdentity::matrix`](crate::PlanIdentity)).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }

    /// `go=1.22, db=15`, for people.
    pub fn label(&self) -> String {
        let pairs: Vec<String> = self.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(", ")
    }

    /// The id as a number, for sorting and lookups (equal values, equal ids).
    fn id_number(&self) -> u32 {
        u32::from_str_radix(&self.id, 16).unwrap_or(0)
    }

    fn matches(&self, entry: &OrderedMap<String>) -> bool {
        entry.iter().all(|(k, v)| self.values.get(k) == Some(v))
    }
}

impl Matrix {
    /// A matrix of `dimensions` with no exceptions.
    pub fn new(dimensions: OrderedMap<Vec<String>>) -> Self {
        Self {
            dimensions,
            exclude: Vec::new(),
            include: Vec::new(),
        }
    }

    /// This matrix with an exclude entry added.
    pub fn with_exclude(mut self, entry: OrderedMap<String>) -> Self {
        self.exclude.push(entry);
        self
    }

    /// This matrix with an include entry added.
    pub fn with_include(mut self, entry: OrderedMap<String>) -> Self {
        self.include.push(entry);
        self
    }

    /// The number of entries of the plain cartesian product (saturating).
    pub fn product_size(&self) -> u128 {
        self.dimensions
            .iter()
            .fold(1u128, |n, (_, values)| n.saturating_mul(values.len() as u128))
    }

    /// Every combination in order: the product (first dimension slowest), minus
    /// exclusions, then the includes not already present.
    ///
    /// Fails with [`Problem::MatrixTooLarge`] above `limit` combinations.
    pub fn combinations(&self, limit: usize) -> Result<Vec<Combination>, Problem> {
        let product = self.product_size();
        if product > ENUMERATION_LIMIT {
            return Err(Problem::MatrixTooLarge {
                combinations: product.saturating_add(self.include.len() as u128),
                limit,
            });
        }
        let mut combinations = Vec::new();
        let mut count: u128 = 0;
        if !self.dimensions.is_empty() {
            let sizes: Vec<usize> = self.dimensions.iter().map(|(_, v)| v.len()).collect();
            let mut odometer = vec![0usize; sizes.len()];
            'product: while sizes.iter().all(|&n| n > 0) {
                let values: OrderedMap<String> = self
                    .dimensions
                    .iter()
                    .zip(&odometer)
                    .map(|((name, values), &i)| (name, values[i].clone()))
                    .collect();
                let combination = Combination::new(values);
                if !self.exclude.iter().any(|e| combination.matches(e)) {
                    count += 1;
                    if combinations.len() <= limit {
                        combinations.push(combination);
                    }
                }
                for position in (0..sizes.len()).rev() {
                    odometer[position] += 1;
                    if odometer[position] < sizes[position] {
                        continue 'product;
                    }
                    odometer[position] = 0;
                }
                break;
            }
        }
        // The product's combinations sorted by id, and the includes added so
        // far by id: an include already present is found by comparing it only
        // with the combinations that share its id.
        let mut product_ids: Vec<(u32, usize)> = Vec::new();
        if !self.include.is_empty() {
            product_ids = combinations
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id_number(), i))
                .collect();
            product_ids.sort_unstable();
        }
        let mut included_ids: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for entry in &self.include {
            let values: OrderedMap<String> = self
                .dimensions
                .keys()
                .filter_map(|name| entry.get(name).map(|v| (name, v.clone())))
                .chain(
                    entry
                        .iter()
                        .filter(|(k, _)| !self.dimensions.contains_key(k))
                        .map(|(k, v)| (k, v.clone())),
                )
                .collect();
            let combination = Combination::new(values);
            let id = combination.id_number();
            let from = product_ids.partition_point(|&(other, _)| other < id);
            let twins = product_ids[from..]
                .iter()
                .take_while(|&&(other, _)| other == id)
                .map(|&(_, i)| i)
                .chain(included_ids.get(&id).into_iter().flatten().copied());
            let present = twins
                .into_iter()
                .any(|i| combinations[i].values == combination.values);
            if !present {
                count += 1;
                if combinations.len() <= limit {
                    included_ids.entry(id).or_default().push(combinations.len());
                    combinations.push(combination);
                }
            }
        }
        if count > limit as u128 {
            return Err(Problem::MatrixTooLarge {
                combinations: count,
                limit,
            });
        }
        Ok(combinations)
    }
}

/// One `${{ ... }}` found in a text: its byte range and the dimension it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference<'t> {
    start: usize,
    end: usize,
    name: &'t str,
}

/// The `${{ matrix.NAME }}` references in `text`, or the first malformed one.
fn references(text: &str) -> Result<Vec<Reference<'_>>, Problem> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find("${{") {
        let start = from + offset;
        let Some(close) = text[start + 3..].find("}}") else {
            return Err(Problem::InvalidExpression {
                expression: text[start..].to_owned(),
                reason: "missing the closing }}".to_owned(),
            });
        };
        let end = start + 3 + close + 2;
        let inner = text[start + 3..end - 2].trim();
        let name = inner.strip_prefix("matrix.").unwrap_or("");
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(Problem::InvalidExpression {
                expression: text[start..end].to_owned(),
                reason: if inner.starts_with("steps.") {
                    "a step result is read as the whole value of an env var (`NAME: \"${{ steps.STEP.results.RESULT }}\"`), then used as $NAME".to_owned()
                } else {
                    "only ${{ matrix.NAME }} is supported".to_owned()
                },
            });
        }
        found.push(Reference { start, end, name });
        from = end;
    }
    Ok(found)
}

/// The dimension names `text` refers to with `${{ matrix.NAME }}`, in order,
/// or the first malformed expression.
///
/// ```
/// use c8s_pipeline_model::matrix::referenced_dimensions;
/// assert_eq!(referenced_dimensions("golang:${{ matrix.go }}"), Ok(vec!["go".to_owned()]));
/// assert!(referenced_dimensions("${{ secrets.x }}").is_err());
/// ```
pub fn referenced_dimensions(text: &str) -> Result<Vec<String>, Problem> {
    Ok(references(text)?.into_iter().map(|r| r.name.to_owned()).collect())
}

/// `text` with every `${{ matrix.NAME }}` replaced by the combination's value.
/// A malformed expression or an unknown dimension is an error.
///
/// ```
/// use c8s_pipeline_model::{matrix::substitute, OrderedMap};
/// let values = OrderedMap::new().with("go", "1.23".to_owned());
/// assert_eq!(substitute("golang:${{ matrix.go }}", &values).as_deref(), Ok("golang:1.23"));
/// ```
pub fn substitute(text: &str, values: &OrderedMap<String>) -> Result<String, Problem> {
    if !text.contains("${{") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for reference in references(text)? {
        let value = values
            .get(reference.name)
            .ok_or_else(|| Problem::UnknownDimension {
                name: reference.name.to_owned(),
                known: known_dimensions(values.keys()),
            })?;
        out.push_str(&text[last..reference.start]);
        out.push_str(value);
        last = reference.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// `dimensions: a, b`, or a note that there is no matrix.
pub(crate) fn known_dimensions<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "the pipeline has no matrix".to_owned()
    } else {
        format!("dimensions: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pairs: &[(&str, &str)]) -> OrderedMap<String> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    fn labels(matrix: &Matrix) -> Vec<String> {
        matrix
            .combinations(256)
            .unwrap_or_default()
            .iter()
            .map(Combination::label)
            .collect()
    }

    #[test]
    fn product_minus_exclude_plus_include() {
        let matrix = Matrix::new(
            OrderedMap::new()
                .with("go", vec!["1.22".to_owned(), "1.23".to_owned()])
                .with("db", vec!["15".to_owned(), "16".to_owned()]),
        )
        .with_exclude(entry(&[("go", "1.22"), ("db", "15")]))
        .with_include(entry(&[("db", "16"), ("go", "1.24")]));
        let labels = labels(&matrix);
        assert_eq!(
            labels,
            [
                "go=1.22, db=16",
                "go=1.23, db=15",
                "go=1.23, db=16",
                "go=1.24, db=16"
            ]
        );
        assert!(matches!(
            matrix.combinations(3),
            Err(Problem::MatrixTooLarge {
                combinations: 4,
                limit: 3
            })
        ));
    }

    #[test]
    fn includes_already_present_are_not_added_twice() {
        let matrix = Matrix::new(OrderedMap::new().with("go", vec!["1.22".to_owned(), "1.23".to_owned()]))
            .with_include(entry(&[("go", "1.23")]))
            .with_include(entry(&[("go", "1.24")]))
            .with_include(entry(&[("go", "1.24")]));
        let labels = labels(&matrix);
        assert_eq!(labels, ["go=1.22", "go=1.23", "go=1.24"]);
    }

    #[test]
    fn ids_are_stable_and_order_independent() {
        let a = Combination::new(entry(&[("go", "1.22"), ("db", "15")]));
        let b = Combination::new(entry(&[("db", "15"), ("go", "1.22")]));
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), 6);
        assert_ne!(a.id, Combination::new(entry(&[("go", "1.22"), ("db", "16")])).id);
    }

    #[test]
    fn substitution() {
        let values = entry(&[("db", "16")]);
        assert_eq!(
            substitute("postgres:${{matrix.db}}-${{ matrix.db }}", &values).as_deref(),
            Ok("postgres:16-16")
        );
        assert!(matches!(
            substitute("${{ matrix.go }}", &values),
            Err(Problem::UnknownDimension { .. })
        ));
        assert!(matches!(
            substitute("${{ matrix.go", &values),
            Err(Problem::InvalidExpression { .. })
        ));
    }
}
