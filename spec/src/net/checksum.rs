//! The Internet checksum (RFC 1071): the 16-bit ones' complement of the
//! ones' complement sum of the data as big-endian 16-bit words, used by the
//! IPv4 header (RFC 791) and by UDP over a pseudo-header (RFC 768).
//!
//! [`sum`] accumulates without folding, so partial sums (pseudo-header,
//! header, payload) add up before one [`fold`]; the complement is taken
//! by the caller (or by [`checksum`]) because NIC offload wants the
//! pseudo-header sum uncomplemented.

/// Ones' complement sum of `data` as big-endian 16-bit words (an odd last
/// byte is padded with a zero byte, RFC 1071 §4.1), added to `acc`; fold
/// with [`fold`]. The words are summed as little-endian 32-bit words, which
/// the compiler turns into wide vector adds: since 2^16 ≡ 1 modulo
/// 2^16 - 1, a 32-bit word adds the same as its two halves, and the sum
/// of byte-swapped words is the byte-swapped sum (RFC 1071 §2(A) byte
/// order independence, §2(B) parallel summation). A device model sums
/// every payload it offloads, so this is on the emulated NIC's hot path.
pub fn sum(data: &[u8], acc: u64) -> u64 {
    let mut le = 0u64;
    // Blocks keep the 64-bit accumulator far from overflow for any length.
    for block in data.chunks(1 << 20) {
        let mut a = 0u64;
        let mut words = block.chunks_exact(4);
        for w in &mut words {
            a += u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
        }
        // The last 1 to 3 bytes, zero-padded: in little-endian order a
        // byte at an even offset is the low byte of its word, which the
        // swap below makes the high byte, as RFC 1071 §4.1 pads.
        let mut last = [0u8; 4];
        let rest = words.remainder();
        last[..rest.len()].copy_from_slice(rest);
        a += u32::from_le_bytes(last) as u64;
        le += fold(a) as u64;
    }
    acc + fold(le).swap_bytes() as u64
}

/// Fold a sum to 16 bits with end-around carries.
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of `data`: the complement of its folded sum. Over data
/// that holds a correct checksum field the result is 0.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// The sum of the IPv4 pseudo-header of a transport datagram (RFC 768 for
/// UDP, RFC 793 for TCP): source and destination address, zero byte and
/// protocol, and the datagram's length.
pub fn pseudo_header_sum(src: [u8; 4], dst: [u8; 4], protocol: u8, len: usize) -> u64 {
    sum(&dst, sum(&src, 0)) + protocol as u64 + len as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A straightforward reference: 16-bit words one at a time.
    fn reference(data: &[u8]) -> u16 {
        let mut acc = 0u32;
        for w in data.chunks(2) {
            let v = if w.len() == 2 {
                u16::from_be_bytes([w[0], w[1]])
            } else {
                u16::from_be_bytes([w[0], 0])
            };
            acc += v as u32;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn sum_matches_the_word_by_word_reference_for_every_length() {
        let data: [u8; 97] = core::array::from_fn(|i| (i as u32 * 37 + 11) as u8);
        for n in 0..data.len() {
            assert_eq!(fold(sum(&data[..n], 0)), reference(&data[..n]), "len {n}");
        }
    }

    /// Sums chain (a payload summed onto a header's sum, split at an even
    /// offset, as the NIC's offload and the apps do), all-ones data stays
    /// 0xffff (never the zero of empty data), and a length past the 1 MiB
    /// summing block agrees with the reference.
    #[test]
    fn partial_sums_chain_and_edge_values_agree_with_the_reference() {
        let data: [u8; 301] = core::array::from_fn(|i| (i as u32 * 91 + 5) as u8);
        for split in (0..data.len()).step_by(2) {
            let (a, b) = data.split_at(split);
            assert_eq!(fold(sum(b, sum(a, 0))), reference(&data), "split {split}");
        }
        for n in 1..40 {
            assert_eq!(fold(sum(&[0xff; 40][..n], 0)), reference(&[0xff; 40][..n]));
        }
        static BIG: [u8; (1 << 20) + 7] = [0xa7; (1 << 20) + 7];
        assert_eq!(fold(sum(&BIG, 0)), reference(&BIG));
    }

    #[test]
    fn rfc_1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let ex = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&ex, 0)), 0xddf2);
        assert_eq!(checksum(&ex), !0xddf2);
    }

    #[test]
    fn checksum_of_a_known_ipv4_header() {
        // The IPv4 header example used in many references (checksum b861).
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(
            checksum(&h),
            0,
            "a header with its checksum sums to all ones"
        );
    }

    #[test]
    fn pseudo_header_and_empty_data() {
        assert_eq!(fold(sum(&[], 0)), 0);
        // 0a00 0001 + 0a00 0002 + 0011 + 001c = 0x1404 + 0x0003 + 0x11 + 0x1c.
        let s = pseudo_header_sum([10, 0, 0, 1], [10, 0, 0, 2], 17, 28);
        assert_eq!(fold(s), 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 28);
        // Carries wrap around.
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(sum(&[0xff, 0xff, 0x00, 0x01], 0)), 0x0001);
    }
}
