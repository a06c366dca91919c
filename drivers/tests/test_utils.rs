//! The `test-utils` fakes used from outside the crate, as another crate's
//! tests would: the module doc's example of `drivers::testing`, compiled.
//! Built only with the feature (`cargo test -p drivers --features test-utils`).
#![forbid(unsafe_code)]

use dma::{EmuIommu, Mapper, RegionOptions};
use drivers::nic::{Chip, Nic, NicOptions};
use drivers::testing::{FakeDevice, FakeRegs, MAC};
use spec::nic::igb as g;
use std::sync::Arc;
use std::time::Duration;

fn options() -> NicOptions {
    NicOptions {
        rx_ring: 8,
        tx_ring: 8,
        pool_bufs: 64,
        region: RegionOptions::EMULATED,
        link_timeout: Duration::ZERO,
        ..NicOptions::default()
    }
}

#[test]
fn a_driver_initialises_against_the_fake_and_its_writes_are_logged() {
    let dev = FakeDevice::new(Chip::I82576);
    let mapper: Arc<dyn Mapper> = Arc::new(EmuIommu::new());
    let nic = Nic::init(FakeRegs(dev.clone()), mapper, Chip::I82576, options()).unwrap();
    assert_eq!(nic.mac(), MAC);
    let reset = dev
        .first_write(g::CTRL, |v| v & g::ctrl::RST.bit() != 0)
        .unwrap();
    // The fake cleared the self-clearing reset bit.
    assert_eq!(dev.get(g::CTRL) & g::ctrl::RST.bit(), 0);
    // Receive is enabled only after the reset, and the ring tail is set.
    let rx_enable = dev
        .first_write(g::RCTL, |v| v & g::rctl::EN.bit() != 0)
        .unwrap();
    assert!(reset < rx_enable, "{:?}", dev.writes());
    assert!(!dev.writes_to(g::rdt(0)).is_empty());
}

#[test]
fn a_scripted_state_is_what_the_driver_sees() {
    // No MAC address loaded: the driver refuses the port.
    let dev = FakeDevice::new(Chip::I82576);
    dev.set(g::ral(0), 0);
    dev.set(g::rah(0), 0);
    let mapper: Arc<dyn Mapper> = Arc::new(EmuIommu::new());
    assert!(Nic::init(FakeRegs(dev), mapper, Chip::I82576, options()).is_err());
    // A reset that never finishes fails the init too.
    let dev = FakeDevice::with(Chip::X82599, true, false, false);
    let mapper: Arc<dyn Mapper> = Arc::new(EmuIommu::new());
    assert!(Nic::init(FakeRegs(dev), mapper, Chip::X82599, options()).is_err());
}
