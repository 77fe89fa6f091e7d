//! Kubernetes resource quantities (`100m`, `512Mi`, `1.5`, `2e3`): exact parsing,
//! arithmetic and canonical formatting, with no floating point anywhere.
//!
//! A quantity is held as a whole number of nano-units in an `i128`, which covers
//! every value Kubernetes accepts. Digits finer than one nano-unit are rounded
//! up, as the API server does.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Why a string is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantityError {
    /// The string is empty.
    #[error("a quantity may not be empty")]
    Empty,
    /// The number part is missing or malformed.
    #[error("{text:?} is not a quantity: expected a number such as 100m, 0.5, 512Mi or 1e3")]
    BadNumber {
        /// The text as written.
        text: String,
    },
    /// The suffix is not one Kubernetes knows.
    #[error(
        "{text:?} is not a quantity: unknown suffix {suffix:?} (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)"
    )]
    BadSuffix {
        /// The text as written.
        text: String,
        /// The suffix that was not understood.
        suffix: String,
    },
    /// The value is too large to represent exactly.
    #[error("{text:?} is out of range")]
    OutOfRange {
        /// The text as written.
        text: String,
    },
}

/// How a quantity is written; canonical formatting keeps the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantityFormat {
    /// Powers of 1024: `Ki`, `Mi`, ...
    BinarySi,
    /// Powers of 1000: `m`, `k`, `M`, ... (and plain numbers).
    DecimalSi,
    /// Scientific notation: `1e3`.
    DecimalExponent,
}

/// An exact Kubernetes quantity.
///
/// ```
/// use c8s_sidecar_core::Quantity;
/// let a: Quantity = "1500m".parse().unwrap();
/// let b: Quantity = "0.5".parse().unwrap();
/// assert_eq!(a.checked_add(&b).unwrap().to_string(), "2");
/// assert_eq!("1Gi".parse::<Quantity>().unwrap().to_string(), "1Gi");
/// assert!("1GB".parse::<Quantity>().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Quantity {
    nanos: i128,
    format: QuantityFormat,
    text: String,
}

impl Quantity {
    /// Parses Kubernetes quantity syntax exactly.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let (nanos, format) = parse_nanos(text)?;
        Ok(Self {
            nanos,
            format,
            text: text.to_owned(),
        })
    }

    /// A quantity of `nanos` nano-units, written canonically in `format`.
    pub fn from_nanos(nanos: i128, format: QuantityFormat) -> Self {
        let text = canonical_text(nanos, format);
        Self { nanos, format, text }
    }

    /// Zero, written `0`.
    pub fn zero() -> Self {
        Self::from_nanos(0, QuantityFormat::DecimalSi)
    }

    /// The value in nano-units (1 = 10⁻⁹).
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in milli-units, rounded up (CPU is usually counted this way).
    pub fn millis_ceil(&self) -> i128 {
        ceil_div(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up (memory is counted in bytes).
    pub fn units_ceil(&self) -> i128 {
        ceil_div(self.nanos, NANOS_PER_UNIT)
    }

    /// The text as it was written (or canonical text for computed quantities).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The format family.
    pub fn format(&self) -> QuantityFormat {
        self.format
    }

    /// The canonical spelling, as the API server would print it.
    pub fn canonical(&self) -> String {
        canonical_text(self.nanos, self.format)
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The exact sum, or `None` on overflow. The result is written canonically.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let nanos = self.nanos.checked_add(other.nanos)?;
        Some(Self::from_nanos(nanos, common_format(self.format, other.format)))
    }

    /// The exact difference, or `None` on overflow.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        let nanos = self.nanos.checked_sub(other.nanos)?;
        Some(Self::from_nanos(nanos, common_format(self.format, other.format)))
    }

    /// The exact product with a whole number, or `None` on overflow.
    pub fn checked_mul(&self, factor: i128) -> Option<Quantity> {
        let nanos = self.nanos.checked_mul(factor)?;
        Some(Self::from_nanos(nanos, self.format))
    }
}

fn common_format(a: QuantityFormat, b: QuantityFormat) -> QuantityFormat {
    if a == b { a } else { QuantityFormat::DecimalSi }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 { q } else { q + 1 }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos && self.text == other.text
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    /// Orders by value; equal values are ordered by their text, so `Ord` agrees with `Eq`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos
            .cmp(&other.nanos)
            .then_with(|| self.text.cmp(&other.text))
    }
}

impl std::hash::Hash for Quantity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
        self.text.hash(state);
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes quantity such as 100m, 1, 512Mi")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }
        // Ask for a string: YAML then hands over the scalar exactly as written (`1.20`, not 1.2).
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A Kubernetes quantity: 100m, 0.5, 2, 512Mi, 1Gi, 1e3",
            "anyOf": [
                { "type": "string", "pattern": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$" },
                { "type": "number" }
            ]
        })
    }
}

/// Splits `text` into its number and suffix, and evaluates it exactly.
fn parse_nanos(text: &str) -> Result<(i128, QuantityFormat), QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let bad_number = || QuantityError::BadNumber {
        text: text.to_owned(),
    };
    let out_of_range = || QuantityError::OutOfRange {
        text: text.to_owned(),
    };
    let bytes = text.as_bytes();
    let mut pos = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            pos = 1;
            true
        }
        Some(b'+') => {
            pos = 1;
            false
        }
        _ => false,
    };
    let number_start = pos;
    while pos < bytes.len() && (bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
        pos += 1;
    }
    let number = &text[number_start..pos];
    let suffix = &text[pos..];
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(bad_number());
    }
    let (format, binary_shift, decimal_exponent) = parse_suffix(suffix).ok_or_else(|| {
        if suffix.starts_with(|c: char| c.is_ascii_alphabetic()) || suffix.is_empty() {
            QuantityError::BadSuffix {
                text: text.to_owned(),
                suffix: suffix.to_owned(),
            }
        } else {
            bad_number()
        }
    })?;

    // mantissa = all digits as one integer; value = mantissa * 10^(exp) * 2^shift
    let frac_trimmed = frac_part.trim_end_matches('0');
    let digits = format!("{int_part}{frac_trimmed}");
    let digits = digits.trim_start_matches('0');
    let mut mantissa: i128 = 0;
    for d in digits.bytes() {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(d - b'0')))
            .ok_or_else(out_of_range)?;
    }
    if mantissa == 0 {
        return Ok((0, format));
    }
    let frac_len = i64::try_from(frac_trimmed.len()).map_err(|_| out_of_range())?;
    let exponent = decimal_exponent
        .checked_add(9)
        .and_then(|e| e.checked_sub(frac_len))
        .ok_or_else(out_of_range)?;
    let mut value = mantissa
        .checked_mul(1i128 << binary_shift)
        .ok_or_else(out_of_range)?;
    if exponent >= 0 {
        let scale = pow10(exponent).ok_or_else(out_of_range)?;
        value = value.checked_mul(scale).ok_or_else(out_of_range)?;
    } else {
        // Finer than a nano-unit: round up, as the API server does.
        value = match pow10(-exponent) {
            Some(scale) => ceil_div(value, scale),
            None => 1,
        };
    }
    Ok((if negative { -value } else { value }, format))
}

fn pow10(exp: i64) -> Option<i128> {
    let exp = u32::try_from(exp).ok()?;
    10i128.checked_pow(exp)
}

/// `(format, power of two, power of ten)` for a suffix.
fn parse_suffix(suffix: &str) -> Option<(QuantityFormat, u32, i64)> {
    use QuantityFormat::*;
    let found = match suffix {
        "" => (DecimalSi, 0, 0),
        "n" => (DecimalSi, 0, -9),
        "u" => (DecimalSi, 0, -6),
        "m" => (DecimalSi, 0, -3),
        "k" => (DecimalSi, 0, 3),
        "M" => (DecimalSi, 0, 6),
        "G" => (DecimalSi, 0, 9),
        "T" => (DecimalSi, 0, 12),
        "P" => (DecimalSi, 0, 15),
        "E" => (DecimalSi, 0, 18),
        "Ki" => (BinarySi, 10, 0),
        "Mi" => (BinarySi, 20, 0),
        "Gi" => (BinarySi, 30, 0),
        "Ti" => (BinarySi, 40, 0),
        "Pi" => (BinarySi, 50, 0),
        "Ei" => (BinarySi, 60, 0),
        _ => {
            let rest = suffix.strip_prefix(['e', 'E'])?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (DecimalExponent, 0, rest.parse::<i64>().ok()?)
        }
    };
    Some(found)
}

/// Canonical text, following the API server: binary when exact and at least
/// 1Ki, otherwise the largest power-of-1000 suffix that keeps an integer.
fn canonical_text(nanos: i128, format: QuantityFormat) -> String {
    if nanos == 0 {
        return "0".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    let units = NANOS_PER_UNIT.unsigned_abs();
    if format == QuantityFormat::BinarySi && magnitude.is_multiple_of(units) && magnitude / units >= 1024 {
        let mut whole = magnitude / units;
        let mut index = 0;
        while index < 6 && whole.is_multiple_of(1024) {
            whole /= 1024;
            index += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][index];
        return format!("{sign}{whole}{suffix}");
    }
    // Powers of 1000 from nano (index 0) up to exa (index 9).
    let mut whole = magnitude;
    let mut index = 0;
    while index < 9 && whole.is_multiple_of(1000) {
        whole /= 1000;
        index += 1;
    }
    if format == QuantityFormat::DecimalExponent {
        let exponent = i64::try_from(index).unwrap_or(0) * 3 - 9;
        return if exponent == 0 {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}e{exponent}")
        };
    }
    let suffix = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"][index];
    format!("{sign}{whole}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> i128 {
        Quantity::parse(text).map(|q| q.nanos()).unwrap_or(i128::MIN)
    }

    #[test]
    fn parses_every_suffix_exactly() {
        assert_eq!(nanos("1"), 1_000_000_000);
        assert_eq!(nanos("100m"), 100_000_000);
        assert_eq!(nanos("0.1"), 100_000_000);
        assert_eq!(nanos(".5"), 500_000_000);
        assert_eq!(nanos("5."), 5_000_000_000);
        assert_eq!(nanos("250u"), 250_000);
        assert_eq!(nanos("7n"), 7);
        assert_eq!(nanos("1k"), 1_000 * NANOS_PER_UNIT);
        assert_eq!(nanos("2M"), 2_000_000 * NANOS_PER_UNIT);
        assert_eq!(nanos("1G"), 1_000_000_000 * NANOS_PER_UNIT);
        assert_eq!(nanos("1T"), 10i128.pow(12) * NANOS_PER_UNIT);
        assert_eq!(nanos("1P"), 10i128.pow(15) * NANOS_PER_UNIT);
        assert_eq!(nanos("1E"), 10i128.pow(18) * NANOS_PER_UNIT);
        assert_eq!(nanos("1Ki"), 1024 * NANOS_PER_UNIT);
        assert_eq!(nanos("512Mi"), 512 * (1 << 20) * NANOS_PER_UNIT);
        assert_eq!(nanos("1.5Gi"), 3 * (1 << 29) * NANOS_PER_UNIT);
        assert_eq!(nanos("1Ti"), (1i128 << 40) * NANOS_PER_UNIT);
        assert_eq!(nanos("1Pi"), (1i128 << 50) * NANOS_PER_UNIT);
        assert_eq!(nanos("1Ei"), (1i128 << 60) * NANOS_PER_UNIT);
        assert_eq!(nanos("1e3"), 1_000 * NANOS_PER_UNIT);
        assert_eq!(nanos("1E-3"), 1_000_000);
        assert_eq!(nanos("+2"), 2 * NANOS_PER_UNIT);
        assert_eq!(nanos("-1"), -NANOS_PER_UNIT);
        assert_eq!(nanos("0.0000000001"), 1, "finer than nano rounds up");
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in [
            "", "1GB", "1K", "1Kib", "abc", "1.2.3", ".", "1e", "1 Gi", "Gi", "1mi", "--1", "0x10", "1e+",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            Quantity::parse("1GB"),
            Err(QuantityError::BadSuffix { suffix, .. }) if suffix == "GB"
        ));
        assert!(matches!(
            Quantity::parse("99999999999999999999999999999999999999Ei"),
            Err(QuantityError::OutOfRange { .. })
        ));
    }

    #[test]
    fn canonical_forms_follow_the_api_server() {
        let canon = |t: &str| Quantity::parse(t).map(|q| q.canonical()).unwrap_or_default();
        assert_eq!(canon("1000m"), "1");
        assert_eq!(canon("1500m"), "1500m");
        assert_eq!(canon("0.1"), "100m");
        assert_eq!(canon("1000"), "1k");
        assert_eq!(canon("0.5Gi"), "512Mi");
        assert_eq!(canon("1024Ki"), "1Mi");
        assert_eq!(canon("512"), "512");
        assert_eq!(canon("1e3"), "1e3");
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("-100m"), "-100m");
    }

    #[test]
    fn arithmetic_is_exact() {
        let q = |t: &str| Quantity::parse(t).unwrap_or_else(|_| Quantity::zero());
        let sum = q("100m").checked_add(&q("0.9")).map(|s| s.to_string());
        assert_eq!(sum.as_deref(), Some("1"));
        assert_eq!(
            q("3").checked_sub(&q("500m")).map(|s| s.to_string()).as_deref(),
            Some("2500m")
        );
        assert_eq!(
            q("256Mi")
                .checked_add(&q("256Mi"))
                .map(|s| s.to_string())
                .as_deref(),
            Some("512Mi")
        );
        assert!(q("1") > q("999m"));
        assert_eq!(q("1").millis_ceil(), 1000);
        assert_eq!(q("1Ki").units_ceil(), 1024);
        assert_eq!(
            q("100m").checked_mul(3).map(|s| s.to_string()).as_deref(),
            Some("300m")
        );
    }
}
