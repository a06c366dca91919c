//! Device models: the emulated hardware the drivers run against when there
//! is no real device. Each model sits in a file named like its driver.

pub mod igb;
pub mod ixgbe;
pub mod nic;
pub mod nvme;
