//! The one hash of the crate: 64-bit FNV-1a, for names that must stay short
//! and distinct (record keys, retry pod names) and for the retry jitter.
//! Kept by hand: six lines, while the `fnv` crate is not in this crate's
//! dependency tree and would still need the offset basis spelled out to seed it.

/// The FNV-1a offset basis.
const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// The FNV-1a prime.
const PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a of `parts`, one after the other, starting from the offset basis
/// XOR `seed` (`seed == 0`: plain FNV-1a). Stable across builds and platforms.
pub(crate) fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|part| part.iter())
        .fold(OFFSET_BASIS ^ seed, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn matches_the_reference_values() {
        // Reference FNV-1a 64 values of "" and "a".
        assert_eq!(fnv1a(0, &[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(0, &[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(0, &[b"ab", b"c"]), fnv1a(0, &[b"abc"]));
        assert_ne!(fnv1a(1, &[b"abc"]), fnv1a(0, &[b"abc"]));
    }
}
