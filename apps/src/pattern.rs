//! The data pattern of `--verify` runs: every logical block's content is a
//! function of (namespace, LBA, seed), so a block read back can be checked
//! without remembering what was written, whatever the order of the I/Os.
#![forbid(unsafe_code)]

/// Fill `block` (one logical block) with the pattern of `lba`.
pub fn fill_block(block: &mut [u8], nsid: u32, lba: u64, seed: u64) {
    let mut x = state(nsid, lba, seed);
    let mut chunks = block.chunks_exact_mut(8);
    if let Some(first) = chunks.next() {
        first.copy_from_slice(&lba.to_le_bytes());
    }
    for c in chunks {
        c.copy_from_slice(&xorshift(&mut x).to_le_bytes());
    }
}

/// Offset of the first byte of `block` that differs from the pattern of
/// `lba`, or None when it matches.
pub fn check_block(block: &[u8], nsid: u32, lba: u64, seed: u64) -> Option<usize> {
    let mut x = state(nsid, lba, seed);
    for (i, c) in block.chunks_exact(8).enumerate() {
        let want = if i == 0 { lba } else { xorshift(&mut x) };
        if c != want.to_le_bytes() {
            let bad = c
                .iter()
                .zip(want.to_le_bytes())
                .position(|(a, b)| *a != b)
                .unwrap_or(0);
            return Some(i * 8 + bad);
        }
    }
    None
}

fn state(nsid: u32, lba: u64, seed: u64) -> u64 {
    (lba ^ seed ^ ((nsid as u64) << 48)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// Advance the xorshift64 state `x` (shifts 13, 7, 17; never 0 from a
/// non-zero state) and return the new value: the block pattern's stream,
/// and a cheap random number source (nvme-perf's random offsets).
#[inline]
pub fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// `len` bytes of the xorshift64 stream from `seed` (little-endian, 8 per
/// step): data that is none of the drives' block patterns, for tests and
/// images.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&xorshift(&mut x).to_le_bytes());
    }
    v.truncate(len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_checks_and_detects_corruption() {
        let mut b = vec![0u8; 512];
        fill_block(&mut b, 1, 77, 5);
        assert_eq!(check_block(&b, 1, 77, 5), None);
        assert_eq!(check_block(&b, 1, 78, 5), Some(0));
        assert!(check_block(&b, 2, 77, 5).is_some());
        b[300] ^= 1;
        assert_eq!(check_block(&b, 1, 77, 5), Some(300));
        let mut c = vec![0u8; 512];
        fill_block(&mut c, 1, 78, 5);
        assert_ne!(&b[8..], &c[8..]);
    }
}
