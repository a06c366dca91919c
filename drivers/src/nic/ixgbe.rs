//! The 82599 init sequence (82599 datasheet §4.6.3 "Initialization
//! Sequence", §4.6.4 link, §4.6.7 receive, §4.6.8 transmit), link,
//! statistics and the register offsets of its rings. Every number comes
//! from [`spec::nic::ixgbe`].
#![forbid(unsafe_code)]

use super::error::NicError;
use super::setup::{
    check_responding, reta_words, rss_key_words, wait_until, RingRegs, RxSetup, ALL_ONES,
};
use super::status::{DeviceStats, LinkStatus};
use crate::regs::RegisterAccess;
use spec::nic::ixgbe::*;
use spec::nic::{RETA_REGS, RSSRK_REGS};
use std::time::Duration;

/// How long a global reset may take before it counts as stuck.
const RESET_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the EEPROM auto-read may take.
const EEPROM_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the DMA initialisation may take.
const DMA_INIT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long to wait for outstanding PCIe master requests before the reset.
const MASTER_DISABLE_TIMEOUT: Duration = Duration::from_millis(80);
/// How long to wait for the security block to drain before enabling RX.
const SECRX_TIMEOUT: Duration = Duration::from_millis(40);

fn disable_interrupts<R: RegisterAccess>(regs: &R) {
    // EIMC bit 31 is reserved: write 0 there (EIMC register description).
    regs.write32(EIMC, EIMC_ALL);
    regs.write32(eimc_ex(0), u32::MAX);
    regs.write32(eimc_ex(1), u32::MAX);
    let _ = regs.read32(EICR);
}

/// §4.6.3.1-§4.6.3.2 and the waits of §4.6.3: interrupts off, master
/// disable, device + link reset, EEPROM auto-read done, DMA init done.
pub(crate) fn reset<R: RegisterAccess>(regs: &R) -> Result<(), NicError> {
    // A device that no longer answers reads all ones everywhere: CTRL.RST
    // would look stuck and the wait below time out with the wrong cause.
    // Ask before the first write.
    check_responding(regs, STATUS)?;
    disable_interrupts(regs);
    let c = regs.read32(CTRL);
    regs.write32(CTRL, c | ctrl::GIO_DIS.bit());
    // Best effort: the reset below stops the master anyway.
    let _ = wait_until(MASTER_DISABLE_TIMEOUT, || {
        regs.read32(STATUS) & status::GIO_MASTER_ENABLE.bit() == 0
    });
    let c = regs.read32(CTRL);
    regs.write32(CTRL, c | ctrl::RST_MASK);
    // The datasheet asks for at least 10 ms before polling after a reset.
    std::thread::sleep(Duration::from_millis(10));
    if !wait_until(RESET_TIMEOUT, || regs.read32(CTRL) & ctrl::RST_MASK == 0) {
        return Err(NicError::ResetTimeout {
            after: RESET_TIMEOUT,
        });
    }
    // Interrupts again: the reset re-enabled nothing, but be certain.
    disable_interrupts(regs);
    // The reset clears GIO_DIS; make sure, or no DMA would happen.
    let c = regs.read32(CTRL);
    if c & ctrl::GIO_DIS.bit() != 0 {
        regs.write32(CTRL, c & !ctrl::GIO_DIS.bit());
    }
    if !wait_until(EEPROM_TIMEOUT, || regs.read32(EEC) & eec::ARD.bit() != 0) {
        return Err(NicError::EepromTimeout {
            after: EEPROM_TIMEOUT,
        });
    }
    if !wait_until(DMA_INIT_TIMEOUT, || {
        regs.read32(RDRXCTL) & rdrxctl::DMAIDONE.bit() != 0
    }) {
        return Err(NicError::DmaInitTimeout {
            after: DMA_INIT_TIMEOUT,
        });
    }
    let ext = regs.read32(CTRL_EXT);
    regs.write32(CTRL_EXT, ext | ctrl_ext::DRV_LOAD.bit());
    Ok(())
}

/// §4.6.4 link set-up. AUTOC as loaded from the EEPROM describes the
/// board's link (the link mode LMS and the PMA/PMD of the fitted PHY or
/// SFP+ cage), so the driver keeps it and only restarts auto-negotiation;
/// rewriting LMS blindly (as ixy does with "10G serial" and a XAUI PMA
/// value) is wrong for backplane and CX4 boards.
pub(crate) fn setup_link<R: RegisterAccess>(regs: &R) {
    let a = regs.read32(AUTOC);
    regs.write32(AUTOC, a | autoc::RESTART_AN.bit());
}

/// The link from LINKS. LINKS all-ones would read as "up at 10 Gb/s":
/// STATUS (whose reserved bits read 0) then tells a device that is gone
/// from one that wrote nonsense.
pub(crate) fn link<R: RegisterAccess>(regs: &R) -> Result<LinkStatus, NicError> {
    let l = regs.read32(LINKS);
    if l == ALL_ONES {
        check_responding(regs, STATUS)?;
        return Err(NicError::DeviceMisbehaved(
            "LINKS reads FFFFFFFFh (every status bit set, reserved ones too) \
             while STATUS does not"
                .into(),
        ));
    }
    if l & links::LINK_UP.bit() == 0 {
        return Ok(LinkStatus {
            up: false,
            speed_mbps: 0,
            full_duplex: false,
        });
    }
    let speed_mbps = match links::SPEED.get(l) {
        links::SPEED_100M => 100,
        links::SPEED_1G => 1000,
        links::SPEED_10G => 10_000,
        _ => 0,
    };
    Ok(LinkStatus {
        up: true,
        speed_mbps,
        // The 82599's MAC works in full duplex only, at every speed it
        // links at, so LINKS has no duplex bit to read.
        full_duplex: true,
    })
}

/// Add the clear-on-read counters to `s` (saturating: device-given
/// values). Whether the device still answers is the caller's check.
pub(crate) fn read_stats<R: RegisterAccess>(regs: &R, s: &mut DeviceStats) {
    s.rx_packets = s.rx_packets.saturating_add(regs.read32(GPRC) as u64);
    s.tx_packets = s.tx_packets.saturating_add(regs.read32(GPTC) as u64);
    // Low before high: reading the high half clears the pair.
    let lo = regs.read32(GORCL) as u64;
    s.rx_bytes = s
        .rx_bytes
        .saturating_add(lo | u64::from(gorch::CNT_H.get(regs.read32(GORCH))) << 32);
    let lo = regs.read32(GOTCL) as u64;
    s.tx_bytes = s
        .tx_bytes
        .saturating_add(lo | u64::from(gorch::CNT_H.get(regs.read32(GOTCH))) << 32);
    for n in 0..PACKET_BUFFERS {
        s.rx_missed = s.rx_missed.saturating_add(regs.read32(mpc(n)) as u64);
        s.rx_no_buffer = s.rx_no_buffer.saturating_add(regs.read32(rnbc(n)) as u64);
    }
    for n in 0..16 {
        s.rx_no_desc = s.rx_no_desc.saturating_add(regs.read32(qprdc(n)) as u64);
    }
    s.rx_crc_errors = s.rx_crc_errors.saturating_add(regs.read32(CRCERRS) as u64);
}

/// Registers of RX ring `q`.
pub(crate) fn rx_ring_regs(q: u16) -> RingRegs {
    RingRegs::rx(&RX_QUEUES, q, rxdctl::ENABLE.bit())
}

/// Registers of TX ring `q`.
pub(crate) fn tx_ring_regs(q: u16) -> RingRegs {
    RingRegs::tx(&TX_QUEUES, q, txdctl::ENABLE.bit())
}

/// §4.6.7 receive initialisation, everything before the queues are
/// enabled: RX off, CRC strip (HLREG0 and RDRXCTL agree), the RDRXCTL bits
/// software must set, jumbo frames, filters (only while RXEN = 0), RSS, and
/// each queue's SRRCTL and DCA_RXCTRL.
pub(crate) fn configure_rx<R: RegisterAccess>(regs: &R, s: &RxSetup) {
    let rx = regs.read32(RXCTRL);
    regs.write32(RXCTRL, rx & !rxctrl::RXEN.bit());

    let mut h = regs.read32(HLREG0) | hlreg0::RXCRCSTRP.bit();
    if s.jumbo() {
        h |= hlreg0::JUMBOEN.bit();
        let m = regs.read32(MAXFRS);
        let mfs = (s.max_frame + spec::nic::ETH_FCS_LEN) as u32;
        regs.write32(MAXFRS, maxfrs::MFS.set(m, mfs));
    } else {
        h &= !hlreg0::JUMBOEN.bit();
    }
    regs.write32(HLREG0, h);

    // RSCFRSTSIZE resets to 0x8 and must be 0; RSCACKC and FCOE_WRFIX reset
    // to 0 and must be 1 (§4.6.7, RDRXCTL description).
    let d = regs.read32(RDRXCTL);
    let d = rdrxctl::RSCFRSTSIZE.set(d, 0);
    regs.write32(
        RDRXCTL,
        d | rdrxctl::CRCSTRIP.bit() | rdrxctl::RSCACKC.bit() | rdrxctl::FCOE_WRFIX.bit(),
    );

    let mut f = regs.read32(FCTRL) | fctrl::BAM.bit();
    if s.promiscuous {
        f |= fctrl::UPE.bit() | fctrl::MPE.bit();
    } else {
        f &= !(fctrl::UPE.bit() | fctrl::MPE.bit());
    }
    regs.write32(FCTRL, f);

    if s.queues > 1 {
        // RSS (§7.1.2, receive-side scaling): key, redirection table, IPv4 + TCP/UDP ports;
        // PCSD so the write-back carries the hash.
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
        let m = regs.read32(MRQC);
        let m = mrqc::MRQE.set(m, mrqc::MRQE_RSS)
            | mrqc::RSS_FIELD_IPV4.bit()
            | mrqc::RSS_FIELD_IPV4_TCP.bit()
            | mrqc::RSS_FIELD_IPV4_UDP.bit();
        regs.write32(MRQC, m);
    } else {
        let m = regs.read32(MRQC);
        regs.write32(MRQC, mrqc::MRQE.set(m, mrqc::MRQE_NONE));
    }

    for q in 0..s.queues {
        let kib = (s.buf_len / srrctl::BSIZEPACKET_UNIT) as u32;
        let v = regs.read32(srrctl(q));
        let v = srrctl::BSIZEPACKET.set(v, kib);
        let v = srrctl::DESCTYPE.set(v, srrctl::DESCTYPE_ADV_ONE_BUFFER);
        regs.write32(srrctl(q), v | srrctl::DROP_EN.bit());
        // Last step of §4.6.7: clear the reserved bit 12 (reset value 1).
        let d = regs.read32(dca_rxctrl(q));
        regs.write32(dca_rxctrl(q), d & !dca_rxctrl::RESERVED_CLEAR.bit());
    }
    let e = regs.read32(CTRL_EXT);
    regs.write32(CTRL_EXT, e | ctrl_ext::NS_DIS.bit());
}

/// Turn the receiver on. The security block is drained around the RXCTRL
/// write, as Intel's drivers do for the 82599 (an RX enable racing incoming
/// traffic can hang the RX DMA otherwise).
pub(crate) fn start_rx<R: RegisterAccess>(regs: &R) {
    let sc = regs.read32(SECRXCTRL);
    regs.write32(SECRXCTRL, sc | secrx::RX_DIS.bit());
    // Best effort: a security block that never reports ready does not stop RX.
    let _ = wait_until(SECRX_TIMEOUT, || {
        regs.read32(SECRXSTAT) & secrx::SECRX_RDY.bit() != 0
    });
    let rx = regs.read32(RXCTRL);
    regs.write32(RXCTRL, rx | rxctrl::RXEN.bit());
    let sc = regs.read32(SECRXCTRL);
    regs.write32(SECRXCTRL, sc & !secrx::RX_DIS.bit());
}

/// §4.6.8 transmit initialisation before the rings: CRC insertion and
/// padding, the DCB arbiter off while configuring, the DMA request size.
pub(crate) fn configure_tx<R: RegisterAccess>(regs: &R) {
    let h = regs.read32(HLREG0);
    regs.write32(HLREG0, h | hlreg0::TXCRCEN.bit() | hlreg0::TXPADEN.bit());
    let t = regs.read32(RTTDCS);
    regs.write32(RTTDCS, t | rttdcs::ARBDIS.bit());
    // Without DCB: MAX_BYTES_NUM_REQ = 0xFFF; bits 31:12 are reserved and
    // keep their value.
    let d = regs.read32(DTXMXSZRQ);
    regs.write32(DTXMXSZRQ, dtxmxszrq::MAX_BYTES_NUM_REQ.set(d, 0xfff));
}

/// §4.6.8 after the rings are programmed: arbiter back on, then the global
/// transmit enable (queues are enabled after it).
pub(crate) fn start_tx_dma<R: RegisterAccess>(regs: &R) {
    let t = regs.read32(RTTDCS);
    regs.write32(RTTDCS, t & !rttdcs::ARBDIS.bit());
    let d = regs.read32(DMATXCTL);
    regs.write32(DMATXCTL, d | dmatxctl::TE.bit());
}
