//! XXH32, the checksum of LZ4 frame descriptors. Needed only to repair the descriptor checksum
//! that Kafka before 0.10 computed over the wrong bytes (KAFKA-3160), so a standard LZ4 frame
//! decoder accepts those frames.

const PRIME_1: u32 = 2_654_435_761;
const PRIME_2: u32 = 2_246_822_519;
const PRIME_3: u32 = 3_266_489_917;
const PRIME_4: u32 = 668_265_263;
const PRIME_5: u32 = 374_761_393;
const STRIPE_BYTES: usize = 16;

fn read_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn round(accumulator: u32, lane: u32) -> u32 {
    accumulator
        .wrapping_add(lane.wrapping_mul(PRIME_2))
        .rotate_left(13)
        .wrapping_mul(PRIME_1)
}

/// XXH32 of `input` with `seed`.
pub(crate) fn xxh32(input: &[u8], seed: u32) -> u32 {
    let mut rest = input;
    let mut hash = if input.len() >= STRIPE_BYTES {
        let mut lanes = [
            seed.wrapping_add(PRIME_1).wrapping_add(PRIME_2),
            seed.wrapping_add(PRIME_2),
            seed,
            seed.wrapping_sub(PRIME_1),
        ];
        while rest.len() >= STRIPE_BYTES {
            for (index, lane) in lanes.iter_mut().enumerate() {
                *lane = round(*lane, read_u32(&rest[index * 4..]));
            }
            rest = &rest[STRIPE_BYTES..];
        }
        lanes[0]
            .rotate_left(1)
            .wrapping_add(lanes[1].rotate_left(7))
            .wrapping_add(lanes[2].rotate_left(12))
            .wrapping_add(lanes[3].rotate_left(18))
    } else {
        seed.wrapping_add(PRIME_5)
    };
    // The specification adds the length modulo 2^32.
    hash = hash.wrapping_add(input.len() as u32);
    while rest.len() >= 4 {
        hash = hash
            .wrapping_add(read_u32(rest).wrapping_mul(PRIME_3))
            .rotate_left(17)
            .wrapping_mul(PRIME_4);
        rest = &rest[4..];
    }
    for &byte in rest {
        hash = hash
            .wrapping_add(u32::from(byte).wrapping_mul(PRIME_5))
            .rotate_left(11)
            .wrapping_mul(PRIME_1);
    }
    hash ^= hash >> 15;
    hash = hash.wrapping_mul(PRIME_2);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(PRIME_3);
    hash ^ (hash >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        // From the xxHash reference implementation and python-xxhash's documentation.
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"a", 0), 0x550D_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition", 0),
            0xE229_3B2F
        );
    }
}
