//! A bit field of a register, a descriptor word or a command dword.

/// A bit field of a register or of a command dword: `width` bits from `shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Lowest bit.
    pub shift: u32,
    /// Number of bits.
    pub width: u32,
}

impl Field {
    /// The field at `shift`, `width` bits wide.
    pub const fn new(shift: u32, width: u32) -> Field {
        Field { shift, width }
    }

    /// Mask of the field in place.
    pub const fn mask(self) -> u64 {
        (if self.width == 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        }) << self.shift
    }

    /// The field's value in `reg`.
    #[inline]
    pub const fn get(self, reg: u64) -> u64 {
        (reg & self.mask()) >> self.shift
    }

    /// `reg` with the field set to `value` (excess bits of `value` dropped).
    #[inline]
    pub const fn set(self, reg: u64, value: u64) -> u64 {
        (reg & !self.mask()) | ((value << self.shift) & self.mask())
    }
}
