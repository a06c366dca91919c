//! Bit fields and layouts as data.
//!
//! A [`Field<W>`] is a named bit range of a `W`-bit register, descriptor word
//! or command dword: `W` is the width of the thing it belongs to, so a field
//! of a 32-bit register takes and gives `u32` and needs no cast at the call
//! site. One-bit flags are fields too ([`Field::bit`] is their mask).
//!
//! A [`Layout`] lists the words of a register map entry, a queue entry or a
//! descriptor, each with its fields ([`FieldInfo`], the width-erased form of
//! a field), so that a decoder can print any of them field by field at run
//! time from the same constants the driver and the device models use.

use core::marker::PhantomData;

/// A bit field of a `W`-bit word: `width` bits from `shift`, with its name
/// as the specification spells it.
#[derive(Debug)]
pub struct Field<W> {
    /// The specification's name of the field (`"EN"`, `"CID"`, `"DD"`).
    pub name: &'static str,
    /// Lowest bit.
    pub shift: u32,
    /// Number of bits.
    pub width: u32,
    word: PhantomData<W>,
}

impl<W> Clone for Field<W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W> Copy for Field<W> {}

impl<W> PartialEq for Field<W> {
    fn eq(&self, other: &Self) -> bool {
        self.shift == other.shift && self.width == other.width
    }
}

impl<W> Eq for Field<W> {}

/// A field with its word's width erased: what a decoder walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    /// The specification's name of the field.
    pub name: &'static str,
    /// Lowest bit.
    pub shift: u32,
    /// Number of bits.
    pub width: u32,
}

impl FieldInfo {
    /// The field's value in `word` (a word of any width, widened).
    pub const fn get(&self, word: u64) -> u64 {
        let mask = if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        };
        (word >> self.shift) & mask
    }
}

/// The unsigned integer types a [`Field`] can belong to.
pub trait WordWidth: Copy + sealed::Sealed {
    /// Width in bits.
    const BITS: u32;
}

mod sealed {
    pub trait Sealed {}
}

impl<W: WordWidth> Field<W> {
    /// The field `name` at `shift`, `width` bits wide. A field that does not
    /// fit its word fails to compile where it is a constant.
    pub const fn new(name: &'static str, shift: u32, width: u32) -> Self {
        assert!(
            width >= 1 && shift + width <= W::BITS,
            "field outside its word"
        );
        Field {
            name,
            shift,
            width,
            word: PhantomData,
        }
    }

    /// The field with its word's width erased.
    pub const fn info(self) -> FieldInfo {
        FieldInfo {
            name: self.name,
            shift: self.shift,
            width: self.width,
        }
    }
}

macro_rules! field_of_width {
    ($w:ty) => {
        impl sealed::Sealed for $w {}
        impl WordWidth for $w {
            const BITS: u32 = <$w>::BITS;
        }

        impl Field<$w> {
            /// Mask of the field in place.
            #[inline]
            pub const fn mask(self) -> $w {
                (if self.width == <$w>::BITS {
                    <$w>::MAX
                } else {
                    ((1 as $w) << self.width) - 1
                }) << self.shift
            }

            /// The mask of a one-bit field (a flag), to test or combine flags.
            #[inline]
            pub const fn bit(self) -> $w {
                assert!(self.width == 1, "bit() of a field wider than one bit");
                self.mask()
            }

            /// The field's value in `word`.
            #[inline]
            pub const fn get(self, word: $w) -> $w {
                (word & self.mask()) >> self.shift
            }

            /// Whether any bit of the field is set in `word`.
            #[inline]
            pub const fn is_set(self, word: $w) -> bool {
                word & self.mask() != 0
            }

            /// `word` with the field set to `value` (excess bits of `value`
            /// dropped).
            #[inline]
            pub const fn set(self, word: $w, value: $w) -> $w {
                (word & !self.mask()) | ((value << self.shift) & self.mask())
            }

            /// `value` placed in the field, every other bit 0: for building a
            /// word from several fields with `|`.
            #[inline]
            pub const fn value(self, value: $w) -> $w {
                (value << self.shift) & self.mask()
            }
        }
    };
}

field_of_width!(u8);
field_of_width!(u16);
field_of_width!(u32);
field_of_width!(u64);

/// One little-endian word of a [`Layout`]: a register, or a dword or qword of
/// a queue entry or descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    /// The specification's name (`"CDW0"`, `"CC"`, `"STATUS_ERROR"`).
    pub name: &'static str,
    /// Byte offset in the layout (in the BAR, for a register).
    pub offset: usize,
    /// Width in bytes: 1, 2, 4 or 8.
    pub bytes: usize,
    /// Its fields, lowest bit first; empty for a word that is one value (an
    /// address, a length).
    pub fields: &'static [FieldInfo],
}

impl Word {
    /// The word's value in `data` (the layout's bytes), little-endian as
    /// both PCIe NVMe and the Intel NICs store them; `None` when `data` is
    /// too short.
    pub fn read(&self, data: &[u8]) -> Option<u64> {
        let b = data.get(self.offset..self.offset + self.bytes)?;
        let mut v = [0u8; 8];
        v[..self.bytes].copy_from_slice(b);
        Some(u64::from_le_bytes(v))
    }
}

/// A layout as data: a queue entry, a descriptor or a register block, with
/// its size, the specification section that defines it and its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// What it is (`"NVMe submission queue entry"`).
    pub name: &'static str,
    /// Where the specification defines it (`"NVMe 1.4 §4.2"`).
    pub section: &'static str,
    /// Size in bytes.
    pub bytes: usize,
    /// Its words, by offset.
    pub words: &'static [Word],
}

#[cfg(test)]
mod tests {
    use super::*;

    const EN: Field<u32> = Field::new("EN", 0, 1);
    const MPS: Field<u32> = Field::new("MPS", 7, 4);
    const TOP: Field<u64> = Field::new("TOP", 32, 32);
    const ALL: Field<u16> = Field::new("ALL", 0, 16);

    #[test]
    fn fields_get_set_and_place_values_in_their_word_width() {
        assert_eq!(MPS.mask(), 0x780);
        assert_eq!(MPS.get(0xffff_ffff), 0xf);
        assert_eq!(MPS.set(0xffff_ffff, 0), 0xffff_f87f);
        assert_eq!(MPS.set(0, 0x1f), 0x780, "excess bits dropped");
        assert_eq!(MPS.value(2) | EN.bit(), 0x101);
        assert!(EN.is_set(1) && !EN.is_set(2));
        assert_eq!(TOP.get(0x1234_5678_0000_0000), 0x1234_5678);
        assert_eq!(ALL.mask(), 0xffff);
        assert_eq!(ALL.get(0xbeef), 0xbeef);
    }

    #[test]
    fn erased_fields_and_words_decode_bytes() {
        const W: Word = Word {
            name: "CC",
            offset: 2,
            bytes: 4,
            fields: &[EN.info(), MPS.info()],
        };
        let data = [0xaa, 0xbb, 0x81, 0x01, 0, 0];
        let v = W.read(&data).unwrap();
        assert_eq!(v, 0x181);
        assert_eq!(W.fields[0].get(v), 1);
        assert_eq!(W.fields[1].get(v), 3);
        assert_eq!(W.read(&data[..5]), None, "short data is not read past");
    }
}
