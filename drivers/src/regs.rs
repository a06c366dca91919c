//! Register access: the one thing drivers need from a device besides DMA.
#![forbid(unsafe_code)]

/// Reads and writes of a device's memory-mapped registers (BAR0). Drivers are
/// generic over it: the VFIO BAR mapping and the emulated BARs both implement
/// it, and the compiler picks one (static dispatch).
///
/// Offsets are in bytes from the start of the BAR and must be naturally
/// aligned; implementations may panic on an offset outside the BAR, which is
/// a driver bug, never a device-controlled value.
pub trait RegisterAccess: Send + Sync {
    /// Read a 32-bit register.
    fn read32(&self, offset: usize) -> u32;
    /// Write a 32-bit register.
    fn write32(&self, offset: usize, value: u32);
    /// Read a 64-bit register (one 8-byte access; no device here needs more).
    fn read64(&self, offset: usize) -> u64;
    /// Write a 64-bit register.
    fn write64(&self, offset: usize, value: u64);
    /// Size of the BAR in bytes. Drivers check offsets derived from device
    /// registers (e.g. NVMe doorbells, placed by CAP.DSTRD) against it at
    /// init, so that no access above can ever be outside the BAR.
    fn bar_size(&self) -> usize;
}
