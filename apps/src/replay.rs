//! A `pcap-in:FILE` wire checked before a run: the replay wire of the
//! emulated ports reads its capture while the port polls, and a record cut
//! short there ends the replay without reaching the app (the port just
//! receives nothing more). [`check_replay_captures`] reads each such capture
//! through once at open time with [`emu::pcap::PcapReader`], so a corrupt
//! or truncated file is one error line naming it instead of a silent run.
#![forbid(unsafe_code)]

use crate::open::device::DeviceSpec;
use crate::AppResult;
use emu::pcap::{PcapError, PcapReader};

/// Read through the capture of every `emu:...,wire=pcap-in:FILE` device in
/// `devices`; the first problem is the error (the codec's message names the
/// file and what is wrong). Records captured with a short snap length are
/// let through: the wire replays them as they are.
pub fn check_replay_captures(devices: &[String]) -> AppResult<()> {
    for dev in devices {
        let Ok(DeviceSpec::EmuNic(spec)) = dev.parse::<DeviceSpec>() else {
            continue;
        };
        let Some(path) = spec.wire.strip_prefix("pcap-in:") else {
            continue;
        };
        let mut reader = match PcapReader::open(path) {
            Ok(r) => r,
            // Opening and the global header: the wire says it itself.
            Err(_) => continue,
        };
        let mut frame = Vec::new();
        loop {
            match reader.next_into(&mut frame) {
                Ok(Some(_)) | Err(PcapError::Truncated { .. }) => {}
                Ok(None) => break,
                Err(e) => return Err(format!("{dev}: {e}").into()),
            }
        }
    }
    Ok(())
}
