//! Byte copies to and from DMA memory, made of atomic accesses.
//!
//! DMA memory is shared with a device (or, for emulated devices, with a
//! model running on another thread) that may read or write it at any time.
//! A plain copy (`ptr::copy_nonoverlapping`) racing with another agent's
//! access is a data race, undefined behaviour in the Rust memory model, and
//! a volatile copy is no better (volatile accesses are not atomic). So every
//! copy of bytes that another agent may touch concurrently is a sequence of
//! `Relaxed` atomic accesses: aligned 8-byte words for the middle of the
//! range, single bytes for the unaligned edges. On the targets we build for
//! (x86-64, aarch64) a relaxed atomic load or store of a word is an ordinary
//! `mov`/`ldr`/`str`, so this costs what a word-wise copy costs.
//!
//! Ordering is not these copies' job: a copy is followed (writer) or
//! preceded (reader) by a release store / acquire load of the dword that
//! announces it (a phase tag, a done bit), or by a release fence and a
//! doorbell write.
//!
//! The two sides may access one location with atomics of different sizes
//! (a model copies a completion in 8-byte words, the driver loads its
//! phase dword with a 4-byte acquire load). The Rust documentation leaves
//! racing mixed-size atomics outside its model (`AtomicU64::from_ptr`); on
//! every target we build for they are single-copy atomic per naturally
//! aligned access, as a device's DMA is. What this module removes is the
//! race between non-atomic accesses, which the compiler may tear, merge or
//! assume away.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

const WORD: usize = std::mem::size_of::<u64>();

/// Bytes from `p` to the next 8-byte boundary, at most `len`.
#[inline(always)]
fn head_len(p: *const u8, len: usize) -> usize {
    ((p as usize).wrapping_neg() & (WORD - 1)).min(len)
}

/// Copy `dst.len()` bytes from shared memory at `src` into `dst`.
///
/// # Safety
/// `src..src + dst.len()` must be valid for reads and writes (DMA memory is
/// both) for the duration of the call and reached by every agent only
/// through atomic accesses or device DMA, never through Rust references.
#[inline]
pub(crate) unsafe fn load(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let head = head_len(src, len);
    let (edge, rest) = dst.split_at_mut(head);
    for (i, d) in edge.iter_mut().enumerate() {
        // SAFETY: in range (caller); a byte is always aligned.
        *d = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Relaxed);
    }
    let mut words = rest.chunks_exact_mut(WORD);
    let mut at = head;
    for d in &mut words {
        // SAFETY: `src + at` is 8-byte aligned (`at` is `head` plus whole
        // words) and the 8 bytes are in range (caller).
        let w = unsafe { AtomicU64::from_ptr(src.add(at).cast_mut().cast()) }.load(Relaxed);
        d.copy_from_slice(&w.to_ne_bytes());
        at += WORD;
    }
    for (i, d) in words.into_remainder().iter_mut().enumerate() {
        // SAFETY: in range (caller); a byte is always aligned.
        *d = unsafe { AtomicU8::from_ptr(src.add(at + i).cast_mut()) }.load(Relaxed);
    }
}

/// Copy `src` into shared memory at `dst`.
///
/// # Safety
/// As for [`load`], for `dst..dst + src.len()`.
#[inline]
pub(crate) unsafe fn store(dst: *mut u8, src: &[u8]) {
    let head = head_len(dst, src.len());
    let (edge, rest) = src.split_at(head);
    for (i, &s) in edge.iter().enumerate() {
        // SAFETY: in range (caller); a byte is always aligned.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(s, Relaxed);
    }
    let mut words = rest.chunks_exact(WORD);
    let mut at = head;
    for s in &mut words {
        let mut w = [0u8; WORD];
        w.copy_from_slice(s);
        // SAFETY: 8-byte aligned and in range, as in `load`.
        unsafe { AtomicU64::from_ptr(dst.add(at).cast()) }.store(u64::from_ne_bytes(w), Relaxed);
        at += WORD;
    }
    for (i, &s) in words.remainder().iter().enumerate() {
        // SAFETY: in range (caller); a byte is always aligned.
        unsafe { AtomicU8::from_ptr(dst.add(at + i)) }.store(s, Relaxed);
    }
}

/// Set `len` bytes of shared memory at `dst` to `byte`.
///
/// # Safety
/// As for [`load`], for `dst..dst + len`.
#[inline]
pub(crate) unsafe fn fill(dst: *mut u8, len: usize, byte: u8) {
    let head = head_len(dst, len);
    let words = (len - head) / WORD;
    let word = u64::from_ne_bytes([byte; WORD]);
    for i in 0..head {
        // SAFETY: in range (caller).
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(byte, Relaxed);
    }
    for k in 0..words {
        // SAFETY: 8-byte aligned and in range, as in `load`.
        unsafe { AtomicU64::from_ptr(dst.add(head + k * WORD).cast()) }.store(word, Relaxed);
    }
    for i in head + words * WORD..len {
        // SAFETY: in range (caller).
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(byte, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every offset and length around the word edges copies exactly the
    /// bytes asked for, in both directions, and touches nothing else.
    #[test]
    fn copies_are_exact_at_every_alignment() {
        let mut mem = vec![0u64; 16];
        let base = mem.as_mut_ptr().cast::<u8>();
        let pattern: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for off in 0..17 {
            for len in 0..40 {
                // SAFETY: `mem` is 128 bytes, off + len <= 56; only raw
                // pointers reach it while the copies run.
                unsafe {
                    fill(base, 128, 0xee);
                    store(base.add(off), &pattern[..len]);
                    let mut back = vec![0u8; len];
                    load(base.add(off), &mut back);
                    assert_eq!(back, &pattern[..len], "offset {off} length {len}");
                    let mut all = [0u8; 128];
                    load(base, &mut all);
                    assert!(all[..off].iter().all(|&b| b == 0xee));
                    assert!(all[off + len..].iter().all(|&b| b == 0xee));
                    fill(base.add(off), len, 7);
                    load(base, &mut all);
                    assert!(all[off..off + len].iter().all(|&b| b == 7));
                    assert!(all[..off].iter().all(|&b| b == 0xee));
                    assert!(all[off + len..].iter().all(|&b| b == 0xee));
                }
            }
        }
    }
}
