//! The crate's one random source: the operating system's, through `getrandom`.
//!
//! Claim tokens, generated secrets and test event ids all come from here.

/// Fills `bytes` from the operating system's generator.
#[cfg(any(feature = "client", feature = "testing", feature = "redis"))]
pub(crate) fn fill(bytes: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(bytes)
}

/// A random 128-bit value.
#[cfg(feature = "redis")]
pub(crate) fn u128() -> Result<u128, getrandom::Error> {
    let mut bytes = [0u8; 16];
    fill(&mut bytes)?;
    Ok(u128::from_le_bytes(bytes))
}

/// A random 64-bit value.
pub(crate) fn u64() -> Result<u64, getrandom::Error> {
    getrandom::u64()
}
