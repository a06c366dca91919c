//! The 82576 / I350 init sequence (82576 datasheet §4.5; the I350 follows
//! the same steps, see its initialization chapter), link, statistics
//! and the register offsets of its rings. Every number comes from
//! [`spec::nic::igb`].
#![forbid(unsafe_code)]

use super::error::NicError;
use super::setup::{check_responding, reta_words, rss_key_words, wait_until, RingRegs, RxSetup};
use super::status::{DeviceStats, LinkStatus};
use crate::regs::RegisterAccess;
use spec::nic::igb::*;
use spec::nic::{RETA_REGS, RSSRK_REGS};
use std::time::Duration;

/// How long a global reset may take before it counts as stuck.
const RESET_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the EEPROM auto-read may take.
const EEPROM_TIMEOUT: Duration = Duration::from_millis(500);
/// How long to wait for outstanding PCIe master requests before the reset.
const MASTER_DISABLE_TIMEOUT: Duration = Duration::from_millis(80);
/// How long one PHY access through MDIC may take.
const MDIC_TIMEOUT: Duration = Duration::from_millis(10);

/// Disable interrupts, reset the device and wait for the EEPROM load.
pub(crate) fn reset<R: RegisterAccess>(regs: &R) -> Result<(), NicError> {
    // A device that no longer answers reads all ones everywhere: CTRL.RST
    // would look stuck and the wait below time out with the wrong cause.
    // Ask before the first write.
    check_responding(regs, STATUS)?;
    // §4.5, interrupts during initialization: off before the reset (and
    // again after it).
    regs.write32(IMC, IMC_ALL);
    let _ = regs.read32(ICR);
    // Stop receiving and transmitting, and let PCIe master requests drain,
    // so the reset does not cut a DMA in half.
    regs.write32(RCTL, 0);
    regs.write32(TCTL, tctl::PSP.bit());
    let ctrl_now = regs.read32(CTRL);
    regs.write32(CTRL, ctrl_now | ctrl::GIO_MASTER_DISABLE.bit());
    // Best effort: the reset below stops the master anyway.
    let _ = wait_until(MASTER_DISABLE_TIMEOUT, || {
        regs.read32(STATUS) & status::GIO_MASTER_ENABLE.bit() == 0
    });
    // §4.5, global reset: CTRL.RST self-clears when the reset is done;
    // registers must not be accessed for ~1 ms after setting it.
    let ctrl_now = regs.read32(CTRL);
    regs.write32(CTRL, ctrl_now | ctrl::RST.bit());
    std::thread::sleep(Duration::from_millis(1));
    if !wait_until(RESET_TIMEOUT, || regs.read32(CTRL) & ctrl::RST.bit() == 0) {
        return Err(NicError::ResetTimeout {
            after: RESET_TIMEOUT,
        });
    }
    // The EEPROM is read again after the reset: wait for it (MAC address,
    // link configuration come from it). Without AUTO_RD after the wait, go
    // on, as Linux's igb does (e1000_reset_hw_82575: "this can happen where
    // there is no EEPROM"): QEMU's igb model never sets AUTO_RD (its EECD
    // holds PRES and the size only), and a port whose EEPROM really did not
    // load has no MAC address in RAL0/RAH0, which init refuses with its own
    // error.
    let _ = wait_until(EEPROM_TIMEOUT, || {
        regs.read32(EECD) & eecd::AUTO_RD.bit() != 0
    });
    regs.write32(IMC, IMC_ALL);
    let _ = regs.read32(ICR);
    // The reset clears GIO_MASTER_DISABLE; make sure, or no DMA would happen.
    let c = regs.read32(CTRL);
    if c & ctrl::GIO_MASTER_DISABLE.bit() != 0 {
        regs.write32(CTRL, c & !ctrl::GIO_MASTER_DISABLE.bit());
    }
    // Tell the manageability firmware a driver owns the port.
    let ext = regs.read32(CTRL_EXT);
    regs.write32(CTRL_EXT, ext | ctrl_ext::DRV_LOAD.bit());
    Ok(())
}

/// Link set-up (§4.5, internal copper PHY): the MAC takes speed and duplex from the
/// PHY (no forcing), Set Link Up, and the internal PHY auto-negotiates.
pub(crate) fn setup_link<R: RegisterAccess>(regs: &R) {
    let c = regs.read32(CTRL);
    regs.write32(
        CTRL,
        (c | ctrl::SLU.bit()) & !(ctrl::FRCSPD.bit() | ctrl::FRCDPX.bit()),
    );
    let mode = ctrl_ext::LINK_MODE.get(regs.read32(CTRL_EXT));
    if mode == 0 {
        // Internal copper PHY: (re)start auto-negotiation. Best effort: a PHY
        // that does not answer leaves the link to its power-on behaviour.
        if let Some(bmcr) = mdic_read(regs, phy::CONTROL) {
            let _ = mdic_write(
                regs,
                phy::CONTROL,
                bmcr | phy::CONTROL_AN_ENABLE.bit() | phy::CONTROL_RESTART_AN.bit(),
            );
        }
    }
}

/// One MDIC access; the value read, None if the PHY did not answer.
fn mdic<R: RegisterAccess>(regs: &R, op: u32, reg: u32, data: u16) -> Option<u16> {
    let cmd = mdic::DATA.value(data.into())
        | mdic::REGADD.value(reg)
        | mdic::PHYADD.value(mdic::INTERNAL_PHY)
        | mdic::OP.value(op);
    regs.write32(MDIC, cmd);
    let mut v = 0;
    let done = wait_until(MDIC_TIMEOUT, || {
        v = regs.read32(MDIC);
        v & mdic::READY.bit() != 0
    });
    if !done || v & mdic::ERROR.bit() != 0 {
        return None;
    }
    Some(mdic::DATA.get(v) as u16)
}

fn mdic_read<R: RegisterAccess>(regs: &R, reg: u32) -> Option<u16> {
    mdic(regs, mdic::OP_READ, reg, 0)
}

fn mdic_write<R: RegisterAccess>(regs: &R, reg: u32, data: u16) -> Option<u16> {
    mdic(regs, mdic::OP_WRITE, reg, data)
}

/// The link from STATUS. All-ones is a device that is gone (the reserved
/// bits of STATUS read 0), not "link up at 1000 Mb/s".
pub(crate) fn link<R: RegisterAccess>(regs: &R) -> Result<LinkStatus, NicError> {
    let s = check_responding(regs, STATUS)?;
    if s & status::LU.bit() == 0 {
        return Ok(LinkStatus {
            up: false,
            speed_mbps: 0,
            full_duplex: false,
        });
    }
    let speed_mbps = match status::SPEED.get(s) {
        status::SPEED_10 => 10,
        status::SPEED_100 => 100,
        _ => 1000,
    };
    Ok(LinkStatus {
        up: true,
        speed_mbps,
        full_duplex: s & status::FD.bit() != 0,
    })
}

/// Add the clear-on-read counters to `s` (saturating: device-given
/// values). Whether the device still answers is the caller's check.
pub(crate) fn read_stats<R: RegisterAccess>(regs: &R, rx_queues: u16, s: &mut DeviceStats) {
    s.rx_packets = s.rx_packets.saturating_add(regs.read32(GPRC) as u64);
    s.tx_packets = s.tx_packets.saturating_add(regs.read32(GPTC) as u64);
    // Low before high: reading the high half clears the pair.
    let lo = regs.read32(GORCL) as u64;
    s.rx_bytes = s
        .rx_bytes
        .saturating_add(lo | (regs.read32(GORCH) as u64) << 32);
    let lo = regs.read32(GOTCL) as u64;
    s.tx_bytes = s
        .tx_bytes
        .saturating_add(lo | (regs.read32(GOTCH) as u64) << 32);
    s.rx_missed = s.rx_missed.saturating_add(regs.read32(MPC) as u64);
    s.rx_no_buffer = s.rx_no_buffer.saturating_add(regs.read32(RNBC) as u64);
    s.rx_crc_errors = s.rx_crc_errors.saturating_add(regs.read32(CRCERRS) as u64);
    for q in 0..rx_queues {
        s.rx_no_desc = s.rx_no_desc.saturating_add(regs.read32(rqdpc(q)) as u64);
    }
}

/// Registers of RX ring `q`.
pub(crate) fn rx_ring_regs(q: u16) -> RingRegs {
    RingRegs::rx(&RX_QUEUES, q, rxdctl::ENABLE.bit())
}

/// Registers of TX ring `q`.
pub(crate) fn tx_ring_regs(q: u16) -> RingRegs {
    RingRegs::tx(&TX_QUEUES, q, txdctl::ENABLE.bit())
}

/// Receive set-up with the receiver off (§4.5, receive initialization): filters, CRC strip, long
/// packets, RSS, and each queue's buffer size and descriptor type.
pub(crate) fn configure_rx<R: RegisterAccess>(regs: &R, s: &RxSetup) {
    // The receive filter control is changed only while RCTL.EN = 0.
    regs.write32(RCTL, 0);
    let mut rctl = rctl::BAM.bit() | rctl::SECRC.bit();
    if s.promiscuous {
        rctl |= rctl::UPE.bit() | rctl::MPE.bit();
    }
    if s.jumbo() {
        rctl |= rctl::LPE.bit();
        regs.write32(
            RLPML,
            rlpml::RLPML.value((s.max_frame + spec::nic::ETH_FCS_LEN) as u32),
        );
    }
    regs.write32(RCTL, rctl);

    if s.queues > 1 {
        // RSS (§7.1, receive-side scaling): key, redirection table over the queues, hash
        // IPv4 addresses and TCP/UDP ports; the hash goes in the
        // write-back (PCSD).
        let key = rss_key_words();
        for (n, w) in key.iter().enumerate().take(RSSRK_REGS) {
            regs.write32(rssrk(n), *w);
        }
        let reta_w = reta_words(s.queues);
        for (n, w) in reta_w.iter().enumerate().take(RETA_REGS) {
            regs.write32(reta(n), *w);
        }
        let c = regs.read32(RXCSUM);
        regs.write32(RXCSUM, c | rxcsum::PCSD.bit());
        let m = mrqc::MRQE.value(mrqc::MRQE_RSS)
            | mrqc::RSS_FIELD_IPV4.bit()
            | mrqc::RSS_FIELD_IPV4_TCP.bit()
            | mrqc::RSS_FIELD_IPV4_UDP.bit();
        regs.write32(MRQC, m);
    } else {
        regs.write32(MRQC, mrqc::MRQE.value(mrqc::MRQE_NONE));
    }

    for q in 0..s.queues {
        let kib = (s.buf_len / srrctl::BSIZEPACKET_UNIT) as u32;
        let v = regs.read32(srrctl(q));
        let v = srrctl::BSIZEPACKET.set(v, kib);
        let v = srrctl::DESCTYPE.set(v, srrctl::DESCTYPE_ADV_ONE_BUFFER);
        // Drop frames for a queue without free descriptors instead of
        // letting them block the shared packet buffer (and the other queues).
        regs.write32(srrctl(q), v | srrctl::DROP_EN.bit());
    }
}

/// Turn the receiver on.
pub(crate) fn start_rx<R: RegisterAccess>(regs: &R) {
    let r = regs.read32(RCTL);
    regs.write32(RCTL, r | rctl::EN.bit());
}

/// Transmit set-up with the transmitter off (§4.5, transmit initialization): pad short packets,
/// collision parameters for full duplex, retransmit on late collision.
pub(crate) fn configure_tx<R: RegisterAccess>(regs: &R) {
    let t = regs.read32(TCTL) & !tctl::EN.bit();
    let t = tctl::CT.set(t, tctl::CT_DEFAULT);
    let t = tctl::COLD.set(t, tctl::COLD_FULL_DUPLEX);
    regs.write32(TCTL, t | tctl::PSP.bit() | tctl::RTLC.bit());
}

/// Turn the transmitter on.
pub(crate) fn start_tx<R: RegisterAccess>(regs: &R) {
    let t = regs.read32(TCTL);
    regs.write32(TCTL, t | tctl::EN.bit());
}
