#![forbid(unsafe_code)]

use super::EmuPciFunction;
use dma::{EmuIommu, IommuFault};
use drivers::trace::Tap;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Why a model's DMA did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaError {
    /// The IOMMU stopped it.
    Fault(IommuFault),
    /// The driver has not enabled bus mastering in the command register.
    BusMasterDisabled,
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmaError::Fault(e) => e.fmt(f),
            DmaError::BusMasterDisabled => {
                write!(
                    f,
                    "device DMA with bus mastering disabled in PCI config space"
                )
            }
        }
    }
}

impl std::error::Error for DmaError {}

impl From<IommuFault> for DmaError {
    fn from(e: IommuFault) -> Self {
        DmaError::Fault(e)
    }
}

/// How a device model reaches memory: through the emulated IOMMU only, gated
/// by the bus-master bit. The models record their accesses in the
/// descriptor trace through [`DeviceDma::tap`], with what each access was
/// for (buffer, descriptor, completion).
#[derive(Clone)]
pub struct DeviceDma {
    iommu: Arc<EmuIommu>,
    pci: Arc<EmuPciFunction>,
    /// The descriptor trace's tap, set once by whoever opens the device and
    /// shared by every clone (see [`DeviceDma::set_tap`]).
    tap: Arc<OnceLock<Tap>>,
}

impl DeviceDma {
    /// DMA of the function `pci` through `iommu`.
    pub fn new(iommu: Arc<EmuIommu>, pci: Arc<EmuPciFunction>) -> Self {
        DeviceDma {
            iommu,
            pci,
            tap: Arc::new(OnceLock::new()),
        }
    }

    /// Record this device's events in `tap` from now on: the model's half
    /// of the descriptor trace ([`drivers::trace`]). Set once, before the
    /// driver starts (a second call is refused: false).
    pub fn set_tap(&self, tap: Tap) -> bool {
        self.tap.set(tap).is_ok()
    }

    /// The descriptor trace's tap ([`Tap::OFF`] until set).
    #[inline]
    pub fn tap(&self) -> &Tap {
        self.tap.get().unwrap_or(&Tap::OFF)
    }

    /// The PCI function.
    pub fn pci(&self) -> &Arc<EmuPciFunction> {
        &self.pci
    }

    /// The IOMMU.
    pub fn iommu(&self) -> &Arc<EmuIommu> {
        &self.iommu
    }

    #[inline]
    fn gate(&self) -> Result<(), DmaError> {
        if self.pci.bus_master() {
            Ok(())
        } else {
            Err(DmaError::BusMasterDisabled)
        }
    }

    fn fault(e: IommuFault) -> DmaError {
        DmaError::Fault(e)
    }

    /// DMA read of `dst.len()` bytes at `iova`.
    #[inline]
    pub fn read(&self, iova: u64, dst: &mut [u8]) -> Result<(), DmaError> {
        self.gate()?;
        self.iommu.read(iova, dst).map_err(Self::fault)
    }

    /// DMA write of `src` at `iova`.
    #[inline]
    pub fn write(&self, iova: u64, src: &[u8]) -> Result<(), DmaError> {
        self.gate()?;
        self.iommu.write(iova, src).map_err(Self::fault)
    }

    /// DMA write of one dword with release ordering (the phase/done dword, written last).
    #[inline]
    pub fn store_u32_release(&self, iova: u64, value: u32) -> Result<(), DmaError> {
        self.gate()?;
        self.iommu
            .store_u32_release(iova, value)
            .map_err(Self::fault)
    }
}
