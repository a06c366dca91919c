//! The per-queue register maps as data: where each register of each RX and
//! TX descriptor ring sits in BAR0, once per chip family
//! ([`super::igb::RX_QUEUES`], [`super::ixgbe::RX_QUEUES`], ...). The driver
//! takes its ring registers from these tables, the device models decode an
//! offset back to (queue, register) from the same tables, and a trace
//! decoder names an offset with them.
//!
//! A chip places a queue's registers in one or more *blocks*: the 82576
//! has a legacy block for queues 0..3 and a second block that holds every
//! queue (82576 datasheet §8.10, §8.12); the 82599 splits its RX queues
//! into 0..63 and 64..127 and keeps an 82598-compatible SRRCTL array for
//! queues 0..15 (82599 datasheet §8.2.3.8). A register's *primary* address
//! is the first block listing it for that queue; later blocks are aliases.

/// A per-RX-queue register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RxReg {
    /// RDBAL: descriptor ring base address, low 32 bits.
    Bal,
    /// RDBAH: descriptor ring base address, high 32 bits.
    Bah,
    /// RDLEN: ring length in bytes.
    Len,
    /// RDH: the head, written by the device.
    Head,
    /// RDT: the tail (the RX doorbell).
    Tail,
    /// RXDCTL: queue enable and thresholds.
    Dctl,
    /// SRRCTL: buffer size and descriptor type.
    Srrctl,
}

/// A per-TX-queue register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxReg {
    /// TDBAL: descriptor ring base address, low 32 bits.
    Bal,
    /// TDBAH: descriptor ring base address, high 32 bits.
    Bah,
    /// TDLEN: ring length in bytes.
    Len,
    /// TDH: the head, written by the device.
    Head,
    /// TDT: the tail (the TX doorbell).
    Tail,
    /// TXDCTL: queue enable and thresholds.
    Dctl,
}

/// A register of a descriptor ring: [`RxReg`] or [`TxReg`].
pub trait QueueRegister: Copy + Eq + 'static {
    /// Every register of the kind.
    const ALL: &'static [Self];
    /// The datasheet's name of the register (`"RDT"`).
    fn name(self) -> &'static str;
}

impl QueueRegister for RxReg {
    const ALL: &'static [Self] = &[
        RxReg::Bal,
        RxReg::Bah,
        RxReg::Len,
        RxReg::Head,
        RxReg::Tail,
        RxReg::Dctl,
        RxReg::Srrctl,
    ];
    fn name(self) -> &'static str {
        match self {
            RxReg::Bal => "RDBAL",
            RxReg::Bah => "RDBAH",
            RxReg::Len => "RDLEN",
            RxReg::Head => "RDH",
            RxReg::Tail => "RDT",
            RxReg::Dctl => "RXDCTL",
            RxReg::Srrctl => "SRRCTL",
        }
    }
}

impl QueueRegister for TxReg {
    const ALL: &'static [Self] = &[
        TxReg::Bal,
        TxReg::Bah,
        TxReg::Len,
        TxReg::Head,
        TxReg::Tail,
        TxReg::Dctl,
    ];
    fn name(self) -> &'static str {
        match self {
            TxReg::Bal => "TDBAL",
            TxReg::Bah => "TDBAH",
            TxReg::Len => "TDLEN",
            TxReg::Head => "TDH",
            TxReg::Tail => "TDT",
            TxReg::Dctl => "TXDCTL",
        }
    }
}

/// One block of per-queue registers: queues `first..first + count`, queue
/// `first`'s registers at `base`, the next queue's `stride` bytes further,
/// each register at its offset inside the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueBlock<R: 'static> {
    /// Address of queue `first`'s block.
    pub base: usize,
    /// Bytes from one queue's block to the next.
    pub stride: usize,
    /// The first queue of the block.
    pub first: u16,
    /// How many queues the block holds.
    pub count: u16,
    /// The registers in the block and their offsets in it.
    pub regs: &'static [(R, usize)],
}

/// The per-queue registers of one direction of a chip family: its blocks,
/// the primary one first for each queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueMap<R: 'static> {
    /// The blocks, in order of precedence.
    pub blocks: &'static [QueueBlock<R>],
}

impl<R: QueueRegister> QueueBlock<R> {
    /// Whether queue `q` is in the block.
    pub const fn holds(&self, q: u16) -> bool {
        q >= self.first && q - self.first < self.count
    }

    /// The address of `reg` of queue `q` in this block, if the block has
    /// both.
    pub fn get(&self, q: u16, reg: R) -> Option<usize> {
        if !self.holds(q) {
            return None;
        }
        let (_, off) = self.regs.iter().find(|(r, _)| *r == reg)?;
        Some(self.base + (q - self.first) as usize * self.stride + off)
    }

    /// The queue and register at `offset` in this block.
    pub fn decode(&self, offset: usize) -> Option<(u16, R)> {
        let rel = offset.checked_sub(self.base)?;
        let q = rel / self.stride;
        if q >= self.count as usize {
            return None;
        }
        let inner = rel % self.stride;
        let (r, _) = self.regs.iter().find(|(_, off)| *off == inner)?;
        Some((self.first + q as u16, *r))
    }
}

impl<R: QueueRegister> QueueMap<R> {
    /// Every address of `reg` of queue `q`, the primary one first (empty
    /// for a queue the chip does not have).
    pub fn addresses(&self, q: u16, reg: R) -> impl Iterator<Item = usize> + '_ {
        self.blocks.iter().filter_map(move |b| b.get(q, reg))
    }

    /// The queue and register at `offset`, primary address or alias.
    pub fn decode(&self, offset: usize) -> Option<(u16, R)> {
        self.blocks.iter().find_map(|b| b.decode(offset))
    }
}

/// The const lookups: the register is compared by discriminant, which a
/// generic `const fn` cannot do.
macro_rules! const_lookup {
    ($r:ty) => {
        impl QueueBlock<$r> {
            /// The address of `reg` of queue `q` in this block. Panics (at
            /// compile time where it is a constant) when the block lacks
            /// either.
            pub const fn addr(&self, q: u16, reg: $r) -> usize {
                match self.offset(q, reg) {
                    Some(a) => a,
                    None => panic!("queue register outside the block"),
                }
            }

            const fn offset(&self, q: u16, reg: $r) -> Option<usize> {
                if !self.holds(q) {
                    return None;
                }
                let mut i = 0;
                while i < self.regs.len() {
                    if self.regs[i].0 as u8 == reg as u8 {
                        let at = (q - self.first) as usize * self.stride;
                        return Some(self.base + at + self.regs[i].1);
                    }
                    i += 1;
                }
                None
            }
        }

        impl QueueMap<$r> {
            /// The primary address of `reg` of queue `q`. Panics (at compile
            /// time where it is a constant) for a queue the map lacks.
            pub const fn addr(&self, q: u16, reg: $r) -> usize {
                let mut b = 0;
                while b < self.blocks.len() {
                    if let Some(a) = self.blocks[b].offset(q, reg) {
                        return a;
                    }
                    b += 1;
                }
                panic!("queue outside the register map")
            }
        }
    };
}

const_lookup!(RxReg);
const_lookup!(TxReg);
