//! Record payloads shaped like ProducerPerformance's: random upper-case letters, so lz4 gets
//! roughly the same (poor) ratio from both load generators.

/// A deterministic xorshift, so runs are repeatable without a rand dependency.
pub fn letters(size_bytes: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size_bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}
