//! Kubernetes quantities (`512Mi`, `1.5Gi`, `250m`, `2`, `1e3`) parsed into bytes and millicores.
//!
//! Exact integer arithmetic (no floating point), rounding up like the API server does when it
//! converts a quantity to an integer, so `0.5m` of CPU is 1 millicore, never 0.

use thiserror::Error;

/// Millicores of the named CPU tiers of a template (`cpu: low | medium | high`).
pub const CPU_TIER_LOW_MILLIS: u64 = 250;
/// See [`CPU_TIER_LOW_MILLIS`].
pub const CPU_TIER_MEDIUM_MILLIS: u64 = 500;
/// See [`CPU_TIER_LOW_MILLIS`].
pub const CPU_TIER_HIGH_MILLIS: u64 = 1000;

/// A quantity that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The string was empty.
    #[error(
        "empty quantity: expected a number with an optional suffix such as 512Mi, 1Gi, 250m or 2"
    )]
    Empty,
    /// The string is not a Kubernetes quantity.
    #[error(
        "{input:?} is not a quantity: {reason}; expected a number with an optional suffix such as 512Mi, 1Gi, 250m or 2"
    )]
    Invalid {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Negative quantities make no sense for resources.
    #[error("{input:?} is negative; resource quantities must be zero or more")]
    Negative {
        /// What was given.
        input: String,
    },
    /// The value does not fit in 64 bits.
    #[error("{input:?} is too large")]
    Overflow {
        /// What was given.
        input: String,
    },
}

/// A parsed quantity: `digits × 10^exp10 × 2^exp2`, kept exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exact {
    digits: u128,
    exp10: i32,
    exp2: u32,
}

fn invalid(input: &str, reason: &'static str) -> QuantityError {
    QuantityError::Invalid {
        input: input.to_string(),
        reason,
    }
}

fn parse_exact(input: &str) -> Result<Exact, QuantityError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let (negative, s) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." {
        return Err(invalid(input, "it does not start with a number"));
    }
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next().unwrap_or("");
    if fraction.contains('.') {
        return Err(invalid(input, "it has more than one decimal point"));
    }
    // Trailing zeros of the fraction change nothing and would only overflow the digits.
    let fraction = fraction.trim_end_matches('0');
    let mut digits: u128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        let d = u128::from(c.to_digit(10).ok_or_else(|| invalid(input, "bad digit"))?);
        digits = digits
            .checked_mul(10)
            .and_then(|v| v.checked_add(d))
            .ok_or_else(|| QuantityError::Overflow {
                input: input.to_string(),
            })?;
    }
    let fraction_len =
        i32::try_from(fraction.len()).map_err(|_| invalid(input, "too many digits"))?;
    let (exp10, exp2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other if other.starts_with(['e', 'E']) => {
            let exp: i32 = other[1..]
                .parse()
                .map_err(|_| invalid(input, "the exponent after 'e' is not a whole number"))?;
            if !(-30..=30).contains(&exp) {
                return Err(invalid(input, "the exponent is out of range"));
            }
            (exp, 0)
        }
        _ => {
            return Err(invalid(
                input,
                "unknown suffix (use Ki, Mi, Gi, Ti, m, k, M, G or T)",
            ));
        }
    };
    if negative && digits != 0 {
        return Err(QuantityError::Negative {
            input: input.to_string(),
        });
    }
    Ok(Exact {
        digits,
        exp10: exp10 - fraction_len,
        exp2,
    })
}

/// `exact × 10^extra10`, rounded up to a whole number.
fn to_integer_ceil(input: &str, q: Exact, extra10: i32) -> Result<u64, QuantityError> {
    let overflow = || QuantityError::Overflow {
        input: input.to_string(),
    };
    let mut value = q.digits.checked_shl(q.exp2).ok_or_else(overflow)?;
    if q.exp2 > 0 && value >> q.exp2 != q.digits {
        return Err(overflow());
    }
    let exp10 = q.exp10 + extra10;
    if exp10 >= 0 {
        for _ in 0..exp10 {
            value = value.checked_mul(10).ok_or_else(overflow)?;
        }
    } else {
        let mut divisor: Option<u128> = Some(1);
        for _ in 0..(-exp10) {
            divisor = divisor.and_then(|d| d.checked_mul(10));
        }
        value = match divisor {
            Some(d) => value.div_ceil(d),
            // A divisor past u128 exceeds any value: the ceiling is 1 for anything above zero.
            None => u128::from(value > 0),
        };
    }
    u64::try_from(value).map_err(|_| overflow())
}

/// Parses a memory or disk quantity (`512Mi`, `1Gi`, `1.5G`, `1048576`) into bytes, rounding up.
pub fn parse_bytes(input: &str) -> Result<u64, QuantityError> {
    let q = parse_exact(input)?;
    to_integer_ceil(input, q, 0)
}

/// Parses a CPU quantity (`250m`, `0.5`, `2`) or tier (`low`, `medium`, `high`) into millicores.
pub fn parse_cpu_millis(input: &str) -> Result<u64, QuantityError> {
    match input.trim() {
        "low" => return Ok(CPU_TIER_LOW_MILLIS),
        "medium" => return Ok(CPU_TIER_MEDIUM_MILLIS),
        "high" => return Ok(CPU_TIER_HIGH_MILLIS),
        _ => {}
    }
    let q = parse_exact(input)?;
    to_integer_ceil(input, q, 3)
}

/// Formats bytes in the largest binary unit that divides them exactly (`1536Mi`, `4Gi`, `100`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u32); 5] = [("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20)];
    for (unit, shift) in UNITS {
        let size = 1u64 << shift;
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        return format!("{}Ki", bytes / 1024);
    }
    bytes.to_string()
}

/// Formats millicores as whole cores where exact (`2`), else with the `m` suffix (`1500m`).
pub fn format_cpu_millis(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// The regular expression used in CRD schemas for memory and disk quantities.
pub const QUANTITY_PATTERN: &str =
    r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$";
/// The regular expression used in CRD schemas for CPU: a tier or a quantity.
pub const CPU_PATTERN: &str =
    r"^(low|medium|high|\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?)$";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn binary_and_decimal_suffixes() {
        assert_eq!(parse_bytes("512Mi"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("128974848"), Ok(128_974_848));
        assert_eq!(parse_bytes("129e6"), Ok(129_000_000));
        assert_eq!(parse_bytes("1k"), Ok(1000));
        assert_eq!(parse_bytes("0"), Ok(0));
    }

    #[test]
    fn cpu_quantities_and_tiers() {
        assert_eq!(parse_cpu_millis("250m"), Ok(250));
        assert_eq!(parse_cpu_millis("0.5"), Ok(500));
        assert_eq!(parse_cpu_millis("2"), Ok(2000));
        assert_eq!(parse_cpu_millis("low"), Ok(CPU_TIER_LOW_MILLIS));
        assert_eq!(parse_cpu_millis("medium"), Ok(CPU_TIER_MEDIUM_MILLIS));
        assert_eq!(parse_cpu_millis("high"), Ok(CPU_TIER_HIGH_MILLIS));
        assert_eq!(
            parse_cpu_millis("0.0001"),
            Ok(1),
            "rounds up, never to zero"
        );
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let err = parse_bytes("lots").unwrap_err();
        assert!(matches!(err, QuantityError::Invalid { .. }));
        assert!(
            err.to_string().contains("\"lots\" is not a quantity"),
            "{err}"
        );
        assert_eq!(parse_bytes(""), Err(QuantityError::Empty));
        assert!(matches!(
            parse_bytes("-1Gi"),
            Err(QuantityError::Negative { .. })
        ));
        assert!(matches!(
            parse_bytes("1.2.3"),
            Err(QuantityError::Invalid { .. })
        ));
        assert!(matches!(
            parse_bytes("12Xi"),
            Err(QuantityError::Invalid { .. })
        ));
        assert!(matches!(
            parse_bytes("Mi"),
            Err(QuantityError::Invalid { .. })
        ));
        assert!(matches!(
            parse_bytes("99999Ei"),
            Err(QuantityError::Overflow { .. })
        ));
        assert!(matches!(
            parse_cpu_millis("lots"),
            Err(QuantityError::Invalid { .. })
        ));
    }

    #[test]
    fn tiny_and_zero_padded_quantities_are_exact() {
        let tiny = format!("0.{}1", "0".repeat(39));
        assert_eq!(
            parse_bytes(&tiny),
            Ok(1),
            "a tiny positive quantity rounds up to 1"
        );
        let padded = format!("1.{}", "0".repeat(39));
        assert_eq!(parse_bytes(&padded), Ok(1));
        assert_eq!(parse_bytes(&format!("0.{}", "0".repeat(45))), Ok(0));
    }

    #[test]
    fn formatting_is_exact() {
        assert_eq!(format_bytes(512 * 1024 * 1024), "512Mi");
        assert_eq!(format_bytes(3 << 29), "1536Mi");
        assert_eq!(format_bytes(4 << 30), "4Gi");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_cpu_millis(2000), "2");
        assert_eq!(format_cpu_millis(1500), "1500m");
    }

    #[test]
    fn schema_patterns_agree_with_the_parser() {
        let q = regex_lite(QUANTITY_PATTERN);
        let cpu = regex_lite(CPU_PATTERN);
        for good in ["512Mi", "1.5Gi", "2", "250m", "1e3", ".5"] {
            assert!(q.is_match(good), "{good}");
            assert!(parse_bytes(good).is_ok(), "{good}");
        }
        for bad in ["lots", "1.2.3", "Mi", "", "-1"] {
            assert!(!q.is_match(bad), "{bad}");
        }
        assert!(cpu.is_match("medium") && cpu.is_match("500m") && !cpu.is_match("fast"));
    }

    fn regex_lite(pattern: &str) -> jsonschema::Validator {
        jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": pattern}))
            .unwrap()
    }

    trait IsMatch {
        fn is_match(&self, s: &str) -> bool;
    }
    impl IsMatch for jsonschema::Validator {
        fn is_match(&self, s: &str) -> bool {
            self.is_valid(&serde_json::json!(s))
        }
    }

    proptest! {
        #[test]
        fn formatted_bytes_parse_back(bytes in 0u64..(1u64 << 50)) {
            prop_assert_eq!(parse_bytes(&format_bytes(bytes)), Ok(bytes));
        }

        #[test]
        fn formatted_millis_parse_back(millis in 0u64..10_000_000) {
            prop_assert_eq!(parse_cpu_millis(&format_cpu_millis(millis)), Ok(millis));
        }

        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = parse_bytes(&s);
            let _ = parse_cpu_millis(&s);
        }
    }
}
