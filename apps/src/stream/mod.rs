//! The disk-to-wire stream of blkfwd: the frame format (one UDP datagram
//! per frame, a 40-byte stream header before the disk bytes: [`mod@format`]),
//! the data patterns ([`pattern`]), the engine that sends a range
//! ([`sender`]), and the [`Verifier`] a receiver feeds frames to, which
//! says which bytes of the range arrived, once, intact ([`verify`]).

pub mod format;
pub mod pattern;
pub mod sender;
#[cfg(test)]
mod tests;
pub mod verify;

pub use format::*;
pub use pattern::{pattern_check, pattern_fill, DEFAULT_SEED};
pub use verify::{BadFrames, Expect, Report, Verifier};
