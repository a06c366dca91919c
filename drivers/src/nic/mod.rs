//! Intel NIC drivers: the 82576 / I350 ("igb", 1 GbE) and the 82599
//! ("ixgbe", 10 GbE). Both families use the advanced descriptor format, so
//! the ring logic ([`RxQueue`], [`TxQueue`]) is written once; each chip adds
//! its register map (`spec::nic::igb`, `spec::nic::ixgbe`) and init sequence (the
//! private `igb` and `ixgbe` modules). Generic over
//! [`crate::regs::RegisterAccess`]: the same code drives real hardware
//! through VFIO and the device models of the `emu` crate (`emu::nic`).
//!
//! ```text
//! Nic::init(regs, mapper, chip, opts)   reset, EEPROM/DMA init, MAC, link, queues, RSS, RX/TX on
//!   .rx_queue(q) -> RxQueue             taken once, Send: one per polling thread
//!      rx_batch(&mut out, max)          validated write-backs, batch refill, one RDT write
//!   .tx_queue(q) -> TxQueue
//!      batch() -> TxBatch               the one way to send: push / push_pair / push_buf,
//!                                       tag_last, commit (one TDT write); RS every 32,
//!                                       context on change; tx_batch / tx_bufs loop over it
//!      clean_tagged(cache, sent)        cleanup that hands back the tags of sent frames
//!      clean() / clean_into(cache)      RS-group cleanup, buffers back to their pools
//!   forward(&mut rx, &mut tx, max)      received buffers straight to TX descriptors, as
//!                                       indices: no CPU handle, no copy, bursts of 32
//!   .stats() / .link() / .wait_link()
//! ```
//!
//! Files: `spec` (every number, named once), `chip` (the chips and their
//! limits), `options` (port set-up options and their check), `status` (link
//! state and port counters), `setup` (ring, MAC and RSS register
//! programming shared by the init sequences), `port` (the [`Nic`]),
//! `forward`, `desc` (descriptor encoding and write-back checks), `ring`
//! (descriptor ring memory, index arithmetic, and the descriptor trace:
//! with [`NicOptions::trace`] on, every descriptor written is recorded
//! when the tail write publishes it, every write-back consumed when the
//! driver takes it), `rx`, `tx`, `igb`,
//! `ixgbe` (init sequences, link, statistics), `offload`, `error`.

mod chip;
mod desc;
mod error;
mod forward;
mod igb;
mod ixgbe;
mod offload;
mod options;
mod port;
mod ring;
mod rx;
mod setup;
mod status;
mod tx;

pub use chip::Chip;
pub use error::NicError;
pub use forward::{forward, Forwarded};
pub use offload::Offload;
pub use options::NicOptions;
pub use port::{LinkProbe, Nic};
pub use ring::{MAX_RING, MIN_RING};
pub use rx::{RxPacket, RxQueue, RxQueueStats};
pub use status::{DeviceStats, LinkStatus};
pub use tx::{CutError, PushError, TxBatch, TxPacket, TxQueue, TxQueueStats, RS_EVERY};

#[cfg(test)]
mod tests;
