//! Register names for decoders: a trace printer names a BAR0 offset with
//! `igb::name(offset)` / `ixgbe::name(offset)`, without allocating.

use super::queue::{QueueMap, QueueRegister};
use core::fmt;

/// The datasheet's name of a register, with its index for an element of a
/// register array or a per-queue register. Prints as `CTRL`, `RDT[0]`,
/// `RAL[3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegName {
    /// A single register.
    Single(&'static str),
    /// Element `index` of an array (the queue, for a per-queue register).
    Indexed(&'static str, usize),
}

impl fmt::Display for RegName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegName::Single(n) => f.write_str(n),
            RegName::Indexed(n, i) => write!(f, "{n}[{i}]"),
        }
    }
}

/// A register array: elements `first..first + count` at `base`, `stride`
/// bytes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegArray {
    /// The datasheet's name.
    pub name: &'static str,
    /// Address of element `first`.
    pub base: usize,
    /// Bytes between elements.
    pub stride: usize,
    /// Index of the element at `base`.
    pub first: usize,
    /// Number of elements.
    pub count: usize,
}

impl RegArray {
    /// The element at `offset`, if it is one.
    pub const fn index(&self, offset: usize) -> Option<usize> {
        if offset < self.base || !(offset - self.base).is_multiple_of(self.stride) {
            return None;
        }
        let i = (offset - self.base) / self.stride;
        if i < self.count {
            Some(self.first + i)
        } else {
            None
        }
    }
}

/// The name of `offset` in a family's map: its per-queue registers, then
/// its single registers, then its arrays.
pub(crate) fn lookup<R: QueueRegister, T: QueueRegister>(
    offset: usize,
    rx: &QueueMap<R>,
    tx: &QueueMap<T>,
    singles: &[(usize, &'static str)],
    arrays: &[RegArray],
) -> Option<RegName> {
    if let Some((q, r)) = rx.decode(offset) {
        return Some(RegName::Indexed(r.name(), q.into()));
    }
    if let Some((q, r)) = tx.decode(offset) {
        return Some(RegName::Indexed(r.name(), q.into()));
    }
    if let Some((_, n)) = singles.iter().find(|(o, _)| *o == offset) {
        return Some(RegName::Single(n));
    }
    arrays
        .iter()
        .find_map(|a| Some(RegName::Indexed(a.name, a.index(offset)?)))
}
