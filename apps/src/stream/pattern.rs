//! The data patterns test runs are checked against: every byte is a
//! function of where it lives and a seed, so data read back or received can
//! be checked without remembering what was written, whatever the order.
//!
//! Two patterns: the disk-byte pattern of emulated drives that blkfwd
//! streams and blkrecv checks ([`pattern_fill`], [`pattern_check`]:
//! splitmix64 of the 8-byte word index), and the per-block pattern of
//! `nvme-perf --verify` ([`fill_block`], [`check_block`]: a function of
//! namespace, LBA and seed).
#![forbid(unsafe_code)]

use std::ops::ControlFlow;

/// Seed of the byte pattern of emulated drives unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x5EED;

/// splitmix64 (Steele, Lea, Flood 2014): the word of the pattern.
#[inline]
pub(super) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The pattern's word `w` (disk bytes `8w..8w+8`, little-endian).
#[inline]
fn pattern_word(w: u64, seed: u64) -> u64 {
    splitmix64(w ^ seed)
}

/// The pattern's byte at disk offset `o`.
#[inline]
fn pattern_byte(o: u64, seed: u64) -> u8 {
    (pattern_word(o / 8, seed) >> (8 * (o % 8))) as u8
}

/// Bytes of `buf` (at disk offset `disk_offset`) before the first
/// word-aligned one.
#[inline]
fn unaligned_head(len: usize, disk_offset: u64) -> usize {
    ((8 - disk_offset % 8) % 8).min(len as u64) as usize
}

/// Fill `buf` with the pattern of the disk bytes from `disk_offset` on:
/// byte `o` is byte `o % 8` (little-endian) of `splitmix64(o / 8 ^ seed)`.
pub fn pattern_fill(buf: &mut [u8], disk_offset: u64, seed: u64) {
    let len = buf.len();
    let head = unaligned_head(len, disk_offset);
    let (first, rest) = buf.split_at_mut(head);
    for (i, b) in first.iter_mut().enumerate() {
        *b = pattern_byte(disk_offset + i as u64, seed);
    }
    let w0 = (disk_offset + head as u64) / 8;
    let mut words = rest.chunks_exact_mut(8);
    for (k, c) in (&mut words).enumerate() {
        c.copy_from_slice(&pattern_word(w0 + k as u64, seed).to_le_bytes());
    }
    let tail = words.into_remainder();
    let at = disk_offset + (len - tail.len()) as u64;
    for (i, b) in tail.iter_mut().enumerate() {
        *b = pattern_byte(at + i as u64, seed);
    }
}

/// Call `bad(index)` for the bytes of `buf` that differ from the pattern
/// of the disk bytes from `disk_offset` on, in order, until it breaks.
/// Whole words are compared at once; only a differing word is looked at
/// byte by byte.
fn pattern_scan(
    buf: &[u8],
    disk_offset: u64,
    seed: u64,
    mut bad: impl FnMut(usize) -> ControlFlow<()>,
) {
    let mut bytes = |from: usize, part: &[u8]| -> ControlFlow<()> {
        for (i, &b) in part.iter().enumerate() {
            if b != pattern_byte(disk_offset + (from + i) as u64, seed) {
                bad(from + i)?;
            }
        }
        ControlFlow::Continue(())
    };
    let head = unaligned_head(buf.len(), disk_offset);
    if bytes(0, &buf[..head]).is_break() {
        return;
    }
    let w0 = (disk_offset + head as u64) / 8;
    let mut words = buf[head..].chunks_exact(8);
    for (k, c) in (&mut words).enumerate() {
        let got = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if got != pattern_word(w0 + k as u64, seed) && bytes(head + 8 * k, c).is_break() {
            return;
        }
    }
    let tail = words.remainder();
    let _ = bytes(buf.len() - tail.len(), tail);
}

/// Index of the first byte of `buf` that differs from the pattern of the
/// disk bytes from `disk_offset` on, or None when all match.
pub fn pattern_check(buf: &[u8], disk_offset: u64, seed: u64) -> Option<usize> {
    let mut first = None;
    pattern_scan(buf, disk_offset, seed, |i| {
        first = Some(i);
        ControlFlow::Break(())
    });
    first
}

/// Call `bad(index)` for every byte of `buf` that differs from the pattern.
pub(super) fn pattern_mismatches(
    buf: &[u8],
    disk_offset: u64,
    seed: u64,
    mut bad: impl FnMut(usize),
) {
    pattern_scan(buf, disk_offset, seed, |i| {
        bad(i);
        ControlFlow::Continue(())
    });
}

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

    #[test]
    fn pattern_matches_the_contract_at_any_offset() {
        // splitmix64's first output from state 0 (a published test vector).
        let mut b = [0u8; 16];
        pattern_fill(&mut b, 0, 0);
        assert_eq!(
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            0xE220_A839_7B1D_CDAF
        );
        // Byte o is byte o % 8 of word o / 8 of seed-xored splitmix64.
        let mut whole = vec![0u8; 4096];
        pattern_fill(&mut whole, 1000, DEFAULT_SEED);
        for (i, &byte) in whole.iter().enumerate() {
            let o = 1000 + i as u64;
            let w = splitmix64((o / 8) ^ DEFAULT_SEED).to_le_bytes();
            assert_eq!(byte, w[(o % 8) as usize]);
        }
        for (from, len) in [(1003usize, 1), (1001, 13), (1017, 1432), (0, 4096)] {
            let at = 1000 + from as u64;
            let mut part = vec![0u8; len.min(4096 - from)];
            pattern_fill(&mut part, at, DEFAULT_SEED);
            assert_eq!(&part[..], &whole[from..from + part.len()]);
            assert_eq!(pattern_check(&part, at, DEFAULT_SEED), None);
        }
        whole[777] ^= 0x10;
        whole[900] ^= 1;
        assert_eq!(pattern_check(&whole, 1000, DEFAULT_SEED), Some(777));
        assert_eq!(pattern_check(&whole, 1000, DEFAULT_SEED + 1), Some(0));
        let mut bad = Vec::new();
        pattern_mismatches(&whole, 1000, DEFAULT_SEED, |i| bad.push(i));
        assert_eq!(bad, [777, 900]);
    }
}
