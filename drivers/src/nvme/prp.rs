//! Physical Region Page entries: how a command names its data buffer
//! (NVMe 1.4 §4.3).
//!
//! PRP1 points at the first byte and may carry a dword-aligned offset into
//! its page. If the transfer ends in the next page, PRP2 is that page; if it
//! needs more, PRP2 points at a PRP list: one page-aligned entry per further
//! memory page. A full list page chains to the next through its last entry.
//!
//! [`build_prps`] is a pure function (IOVA arithmetic only), so every layout
//! is unit tested; the queue pair writes the list entries it produces into
//! its own DMA pages.
#![forbid(unsafe_code)]

use std::fmt;

/// The memory page size this driver configures (CC.MPS = 0, 4 KiB). Every
/// controller supports it unless CAP.MPSMIN is larger, which the driver refuses.
pub const PAGE_SIZE: u64 = 4096;

/// Bytes of one PRP entry.
const ENTRY_SIZE: u64 = 8;

/// The PRP fields of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prps {
    /// PRP Entry 1: the data's first byte.
    pub prp1: u64,
    /// PRP Entry 2: 0, the second data page, or the first PRP list page.
    pub prp2: u64,
    /// PRP list pages used (0 when PRP2 is unused or a data page).
    pub list_pages: usize,
}

/// Why a buffer cannot be described by PRPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrpError {
    /// A transfer of zero bytes.
    Empty,
    /// PRP1 must be dword aligned (§4.3: bits 1:0 are reserved).
    MisalignedData {
        /// The data IOVA.
        iova: u64,
    },
    /// A PRP list page is not page aligned.
    MisalignedListPage {
        /// The list page IOVA.
        iova: u64,
    },
    /// The transfer needs more PRP list pages than were given.
    TooLong {
        /// Bytes asked for.
        len: u64,
        /// List pages needed.
        needed: usize,
        /// List pages available.
        available: usize,
    },
    /// The data range wraps around the 64-bit address space.
    Overflow,
}

impl fmt::Display for PrpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrpError::Empty => f.write_str("a transfer of zero bytes"),
            PrpError::MisalignedData { iova } => {
                write!(f, "data IOVA {iova:#x} is not dword (4-byte) aligned")
            }
            PrpError::MisalignedListPage { iova } => {
                write!(f, "PRP list page IOVA {iova:#x} is not page aligned")
            }
            PrpError::TooLong {
                len,
                needed,
                available,
            } => write!(
                f,
                "a transfer of {len} bytes needs {needed} PRP list pages but only {available} exist"
            ),
            PrpError::Overflow => f.write_str("the data range wraps around the address space"),
        }
    }
}

/// PRP list pages needed, in the worst case (the data starting 4 bytes
/// before a page boundary), for transfers of up to `max_len` bytes.
pub fn list_pages_needed(max_len: u64, page_size: u64) -> usize {
    if max_len == 0 {
        return 0;
    }
    let worst_offset = page_size - 4;
    let pages = (worst_offset + max_len).div_ceil(page_size);
    list_pages_for_entries(pages - 1, page_size)
}

/// List pages that hold `entries` data entries: each page holds
/// `page_size / 8` entries, and every page but the last gives its last entry
/// to the chain pointer. One entry needs no list (PRP2 is the page itself).
fn list_pages_for_entries(entries: u64, page_size: u64) -> usize {
    if entries <= 1 {
        return 0;
    }
    let per_page = page_size / ENTRY_SIZE;
    (entries - 1).div_ceil(per_page - 1) as usize
}

/// PRP1 and PRP2 of a valid transfer that needs no PRP list: one that ends
/// in its first or second memory page. None for anything else (longer,
/// empty, misaligned or wrapping: [`build_prps`] says which). The hot path
/// of most I/O: a few instructions, nothing written.
#[inline]
pub fn short_prps(iova: u64, len: u64, page_size: u64) -> Option<(u64, u64)> {
    let offset = iova & (page_size - 1);
    // 1 <= len <= 2 * page_size - offset, in one comparison (len 0 wraps).
    if len.wrapping_sub(1) >= 2 * page_size - offset || !iova.is_multiple_of(4) {
        return None;
    }
    iova.checked_add(len)?;
    // The second page, if used, is page aligned with offset 0 (§4.3): the
    // page after the first (no overflow: the end did not wrap).
    let prp2 = if offset + len > page_size {
        (iova | (page_size - 1)) + 1
    } else {
        0
    };
    Some((iova, prp2))
}

/// Build the PRPs of a transfer of `len` bytes at `iova`.
///
/// `list_pages` are the IOVAs of page-aligned pages reserved for this
/// command's PRP list, used in order. `run(page, index, count, first)` is
/// called for every run of list entries to write, in order: entries
/// `index..index + count` of list page `page` (an index into `list_pages`)
/// are `first`, `first + page_size`, ... (the data pages, one entry each,
/// so a run is written with one bounds check; a page's chain pointer is a
/// run of one). Nothing is written for transfers of one or two pages.
#[inline]
pub fn build_prps(
    iova: u64,
    len: u64,
    page_size: u64,
    list_pages: &[u64],
    mut run: impl FnMut(usize, usize, usize, u64),
) -> Result<Prps, PrpError> {
    debug_assert!(page_size.is_power_of_two() && page_size >= 64);
    if let Some((prp1, prp2)) = short_prps(iova, len, page_size) {
        return Ok(Prps {
            prp1,
            prp2,
            list_pages: 0,
        });
    }
    if len == 0 {
        return Err(PrpError::Empty);
    }
    if !iova.is_multiple_of(4) {
        return Err(PrpError::MisalignedData { iova });
    }
    iova.checked_add(len).ok_or(PrpError::Overflow)?;
    let offset = iova & (page_size - 1);
    let first = page_size - offset;
    if len <= first {
        return Ok(Prps {
            prp1: iova,
            prp2: 0,
            list_pages: 0,
        });
    }
    // Every later entry is page aligned with offset 0 (§4.3).
    let next_page = iova - offset + page_size;
    let entries = (len - first).div_ceil(page_size);
    if entries == 1 {
        return Ok(Prps {
            prp1: iova,
            prp2: next_page,
            list_pages: 0,
        });
    }
    let needed = list_pages_for_entries(entries, page_size);
    if needed > list_pages.len() {
        return Err(PrpError::TooLong {
            len,
            needed,
            available: list_pages.len(),
        });
    }
    if let Some(&bad) = list_pages[..needed]
        .iter()
        .find(|p| !p.is_multiple_of(page_size))
    {
        return Err(PrpError::MisalignedListPage { iova: bad });
    }
    let per_page = (page_size / ENTRY_SIZE) as usize;
    // At most `needed` pages' worth, so a usize.
    let mut left = entries as usize;
    let (mut page, mut value) = (0usize, next_page);
    // The last slot of a page chains to the next page, unless exactly one
    // entry is left for it: then it holds that entry (§4.3, Figure 7).
    while left > per_page {
        run(page, 0, per_page - 1, value);
        run(page, per_page - 1, 1, list_pages[page + 1]);
        value += (per_page as u64 - 1) * page_size;
        left -= per_page - 1;
        page += 1;
    }
    run(page, 0, left, value);
    Ok(Prps {
        prp1: iova,
        prp2: list_pages[0],
        list_pages: needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: u64 = PAGE_SIZE;
    const DATA: u64 = 0x1_0000_0000;
    /// List entries written, as (list page, index, value).
    type Entries = Vec<(usize, usize, u64)>;

    const LIST: [u64; 4] = [0x2_0000_0000, 0x2_0000_1000, 0x2_0000_2000, 0x2_0000_3000];

    /// Build and collect the list entries as (page, index, value).
    fn build(iova: u64, len: u64, lists: &[u64]) -> Result<(Prps, Entries), PrpError> {
        let mut entries = Vec::new();
        let prps = build_prps(iova, len, PS, lists, |p, i, n, v| {
            assert!(n > 0, "an empty run");
            for k in 0..n {
                entries.push((p, i + k, v + k as u64 * PS));
            }
        })?;
        Ok((prps, entries))
    }

    /// Walk the PRPs as a controller does and return the (address, length)
    /// runs it would transfer: an independent check of every layout.
    fn walk(
        prps: Prps,
        len: u64,
        entries: &[(usize, usize, u64)],
        lists: &[u64],
    ) -> Vec<(u64, u64)> {
        let read = |page: u64, index: usize| -> u64 {
            let p = lists.iter().position(|&l| l == page).expect("list page");
            entries
                .iter()
                .find(|e| e.0 == p && e.1 == index)
                .expect("entry written")
                .2
        };
        let mut runs = Vec::new();
        let first = (PS - prps.prp1 % PS).min(len);
        runs.push((prps.prp1, first));
        let mut left = len - first;
        if left == 0 {
            assert_eq!(prps.prp2, 0);
            return runs;
        }
        if left <= PS {
            runs.push((prps.prp2, left));
            return runs;
        }
        let (mut page, mut index) = (prps.prp2, 0usize);
        while left > 0 {
            let v = read(page, index);
            if index == 511 && left > PS {
                page = v;
                index = 0;
                continue;
            }
            assert_eq!(v % PS, 0, "list entry {v:#x} not page aligned");
            let n = left.min(PS);
            runs.push((v, n));
            left -= n;
            index += 1;
        }
        runs
    }

    /// The runs must cover iova..iova+len contiguously.
    fn assert_covers(runs: &[(u64, u64)], iova: u64, len: u64) {
        let mut at = iova;
        for &(a, n) in runs {
            assert_eq!(a, at);
            at += n;
        }
        assert_eq!(at, iova + len);
    }

    #[test]
    fn inside_one_page_uses_prp1_only_even_with_an_offset() {
        let (p, e) = build(DATA + 0x204, 512, &LIST).unwrap();
        assert_eq!(
            p,
            Prps {
                prp1: DATA + 0x204,
                prp2: 0,
                list_pages: 0
            }
        );
        assert!(e.is_empty());
        // Exactly one full page.
        let (p, _) = build(DATA, PS, &LIST).unwrap();
        assert_eq!((p.prp1, p.prp2), (DATA, 0));
        // Ending exactly at the page boundary.
        let (p, _) = build(DATA + 0xe00, 0x200, &LIST).unwrap();
        assert_eq!(p.prp2, 0);
    }

    #[test]
    fn crossing_one_boundary_puts_the_next_page_in_prp2() {
        let (p, e) = build(DATA + 0xe00, 0x400, &LIST).unwrap();
        assert_eq!(
            p,
            Prps {
                prp1: DATA + 0xe00,
                prp2: DATA + PS,
                list_pages: 0
            }
        );
        assert!(e.is_empty());
        // Two aligned pages.
        let (p, _) = build(DATA, 2 * PS, &LIST).unwrap();
        assert_eq!((p.prp1, p.prp2), (DATA, DATA + PS));
    }

    #[test]
    fn three_pages_need_a_list_of_page_aligned_entries() {
        let (p, e) = build(DATA, 3 * PS, &LIST).unwrap();
        assert_eq!(
            p,
            Prps {
                prp1: DATA,
                prp2: LIST[0],
                list_pages: 1
            }
        );
        assert_eq!(e, vec![(0, 0, DATA + PS), (0, 1, DATA + 2 * PS)]);
        // Unaligned start: 8 KiB from offset 4 spans three pages.
        let (p, e) = build(DATA + 4, 2 * PS, &LIST).unwrap();
        assert_eq!(p.prp1, DATA + 4);
        assert_eq!(p.prp2, LIST[0]);
        assert_eq!(e, vec![(0, 0, DATA + PS), (0, 1, DATA + 2 * PS)]);
        assert_covers(&walk(p, 2 * PS, &e, &LIST), DATA + 4, 2 * PS);
    }

    #[test]
    fn exactly_mdts_sized_transfers() {
        // 128 KiB (MDTS 5 with 4 KiB pages), aligned: PRP1 + 31 list entries.
        let len = 128 << 10;
        let (p, e) = build(DATA, len, &LIST).unwrap();
        assert_eq!(p.list_pages, 1);
        assert_eq!(e.len(), 31);
        assert_covers(&walk(p, len, &e, &LIST), DATA, len);
        // 2 MiB unaligned by one dword short of a page: 512 entries fill one
        // list page exactly, with no chain.
        let len = 2 << 20;
        let iova = DATA + PS - 4;
        let (p, e) = build(iova, len, &LIST).unwrap();
        assert_eq!(p.list_pages, 1);
        assert_eq!(e.len(), 512);
        assert_eq!(e[511], (0, 511, DATA + 512 * PS));
        assert_covers(&walk(p, len, &e, &LIST), iova, len);
        assert_eq!(list_pages_needed(len, PS), 1);
    }

    #[test]
    fn full_list_pages_chain_through_their_last_entry() {
        // 513 entries: page 0 holds 511 data entries and the chain pointer.
        let len = 514 * PS;
        let (p, e) = build(DATA, len, &LIST).unwrap();
        assert_eq!(p.list_pages, 2);
        assert_eq!(e.len(), 514);
        assert_eq!(e[510], (0, 510, DATA + 511 * PS));
        assert_eq!(e[511], (0, 511, LIST[1]));
        assert_eq!(e[512], (1, 0, DATA + 512 * PS));
        assert_eq!(e[513], (1, 1, DATA + 513 * PS));
        assert_covers(&walk(p, len, &e, &LIST), DATA, len);
        // Three pages, unaligned start, odd length.
        let iova = DATA + 0x10c;
        let len = 1100 * PS + 0x333;
        let (p, e) = build(iova, len, &LIST).unwrap();
        assert_eq!(p.list_pages, 3);
        assert_covers(&walk(p, len, &e, &LIST), iova, len);
        assert_eq!(list_pages_needed(8 << 20, PS), 5);
    }

    #[test]
    fn too_long_misaligned_and_empty_transfers_are_refused() {
        assert_eq!(
            build(DATA, 3 * PS, &[]).unwrap_err(),
            PrpError::TooLong {
                len: 3 * PS,
                needed: 1,
                available: 0
            }
        );
        assert_eq!(
            build(DATA, 514 * PS, &LIST[..1]).unwrap_err(),
            PrpError::TooLong {
                len: 514 * PS,
                needed: 2,
                available: 1
            }
        );
        assert_eq!(
            build(DATA + 2, 8, &LIST).unwrap_err(),
            PrpError::MisalignedData { iova: DATA + 2 }
        );
        assert_eq!(build(DATA, 0, &LIST).unwrap_err(), PrpError::Empty);
        assert_eq!(
            build(DATA, 3 * PS, &[LIST[0] + 8]).unwrap_err(),
            PrpError::MisalignedListPage { iova: LIST[0] + 8 }
        );
        assert_eq!(
            build(u64::MAX - 3, 8, &LIST).unwrap_err(),
            PrpError::Overflow
        );
    }

    #[test]
    fn the_short_path_takes_exactly_the_transfers_that_need_no_list() {
        let offsets = [0, 4, 0x200, PS / 2, PS - 4];
        let lens = [
            1,
            4,
            512,
            PS - 4,
            PS,
            PS + 4,
            2 * PS - 4,
            2 * PS,
            2 * PS + 4,
            3 * PS,
        ];
        for &off in &offsets {
            for &len in &lens {
                let iova = DATA + off;
                let short = short_prps(iova, len, PS);
                let (p, e) = build(iova, len, &LIST).unwrap();
                if off + len <= 2 * PS {
                    assert_eq!(short, Some((p.prp1, p.prp2)), "{off:#x}+{len:#x}");
                    assert!(e.is_empty());
                    assert_covers(&walk(p, len, &e, &LIST), iova, len);
                } else {
                    assert_eq!(short, None, "{off:#x}+{len:#x}");
                }
            }
        }
        // Refused (the general builder says why): empty, misaligned, wrapping.
        assert_eq!(short_prps(DATA, 0, PS), None);
        assert_eq!(short_prps(DATA + 2, 512, PS), None);
        assert_eq!(short_prps(u64::MAX - 3, 4, PS), None);
        assert_eq!(short_prps(u64::MAX - 7, 4, PS), Some((u64::MAX - 7, 0)));
    }

    #[test]
    fn list_page_budget_matches_the_worst_case() {
        for &len in &[
            1u64,
            512,
            PS,
            2 * PS,
            3 * PS,
            128 << 10,
            2 << 20,
            (2 << 20) + PS,
            4 << 20,
        ] {
            let need = list_pages_needed(len, PS);
            let lists: Vec<u64> = (0..need as u64).map(|i| LIST[0] + i * PS).collect();
            for off in [0, 4, 0x200, PS - 4] {
                let (p, e) = build(DATA + off, len, &lists).unwrap();
                assert!(p.list_pages <= need);
                assert_covers(&walk(p, len, &e, &lists), DATA + off, len);
            }
        }
    }
}
