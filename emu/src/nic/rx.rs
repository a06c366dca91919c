//! The receive path (82576 datasheet §7.1, 82599 datasheet §7.1): a frame
//! from the wire passes the size checks and the destination address filter,
//! RSS picks its queue, and it is written into the buffers of that queue's
//! free descriptors (several, with EOP on the last, when it does not fit
//! one buffer), each descriptor written back in the advanced write-back
//! format.
//!
//! The model has no packet buffer: a frame that finds no free descriptor is
//! dropped at once and counted where the datasheet counts such drops (RNBC,
//! and RQDPC/QPRDC when SRRCTL.DROP_EN is set, else MPC).
//!
//! The state it works on (rings, engine, cached configuration) is in `rx_state`.
#![forbid(unsafe_code)]

use super::counters::bump;
use super::frame::{self, ETH_HLEN};
use super::layout::{Ctr, MaxFrame, RxReg};
use super::model::NicModel;
use super::queue_state::{Dir, ACTIVE};
use super::rss::{RssConfig, RssFields, RssResult, KEY_LEN};
use super::rx_state::{QueueConfig, RxConfig, RxEngine, RxRing, FETCH_BATCH, MTA_REGS};
use crate::wire::MAX_FRAME;
use crate::DmaError;
use spec::nic::adv_desc::rx::{self as desc, info, rss_type, status};
use spec::nic::adv_desc::DESC_SIZE;
use spec::nic::{ETH_FCS_LEN, ETH_MAX_FRAME, ETH_MIN_FRAME, RETA_ENTRIES, RETA_REGS, RSSRK_REGS};
use std::sync::atomic::Ordering;

/// MTA bit index shift for each MO value (82576 §8.10.15, 82599 §8.2.3.7.7):
/// MO = 0 uses destination address bits 47:36, 1 bits 46:35, 2 bits 45:34,
/// 3 bits 43:32.
const MO_SHIFT: [u32; 4] = [4, 3, 2, 0];
/// Bits of an MTA index.
const MTA_INDEX_MASK: u32 = 0xfff;
/// Bytes a VLAN tag adds to the largest accepted frame.
const VLAN_TAG_LEN: usize = 4;

impl RxConfig {
    fn build(m: &NicModel) -> Self {
        let l = &m.layout;
        let (freg, upe, mpe, bam) = l.filter;
        let f = m.load(freg);
        let macs = (0..l.rar_entries)
            .filter_map(|n| {
                let rah = m.load((l.rah)(n));
                (rah & l.rah_av != 0).then(|| {
                    let lo = m.load((l.ral)(n)).to_le_bytes();
                    let hi = (rah as u16).to_le_bytes();
                    [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]]
                })
            })
            .collect();
        let mta_on = l.mcast.enable.is_none_or(|r| m.bit(r));
        let mta = mta_on.then(|| {
            let mut t = Box::new([0u32; MTA_REGS]);
            for (i, w) in t.iter_mut().enumerate() {
                *w = m.load(l.mcast.mta + 4 * i);
            }
            let mo = l.mcast.mo.1.get(m.load(l.mcast.mo.0)) as usize;
            (t, MO_SHIFT[mo & 3])
        });
        let max_frame = match l.max_frame {
            MaxFrame::Igb {
                rctl,
                lpe,
                rlpml,
                field,
            } if m.load(rctl) & lpe != 0 => field.get(m.load(rlpml)) as usize,
            MaxFrame::Ixgbe {
                hlreg0,
                jumboen,
                maxfrs,
                mfs,
            } if m.load(hlreg0) & jumboen != 0 => mfs.get(m.load(maxfrs)) as usize,
            _ => ETH_MAX_FRAME + ETH_FCS_LEN,
        };
        let r = &l.rss;
        let mrqc = m.load(r.mrqc);
        let mrqe = r.mrqe.get(mrqc);
        let rss = if mrqe == r.mrqe_rss {
            let bit = |i: usize| mrqc & r.field_bits[i] != 0;
            let mut key = [0u8; KEY_LEN];
            for i in 0..RSSRK_REGS {
                key[4 * i..4 * i + 4].copy_from_slice(&m.load((r.rssrk)(i)).to_le_bytes());
            }
            let mut reta = [0u8; RETA_ENTRIES];
            for i in 0..RETA_REGS {
                reta[4 * i..4 * i + 4].copy_from_slice(&m.load((r.reta)(i)).to_le_bytes());
            }
            Some(RssConfig {
                fields: RssFields {
                    ipv4: bit(0),
                    ipv4_tcp: bit(1),
                    ipv4_udp: bit(2),
                    ipv6: bit(3),
                    ipv6_tcp: bit(4),
                    ipv6_udp: bit(5),
                },
                key,
                reta,
                reta_mask: r.reta_mask,
            })
        } else {
            if mrqe != r.mrqe_none {
                m.note(|| {
                    format!(
                        "MRQC.MRQE {mrqe:#x} (VMDq / DCB) is not modelled; every frame goes to \
                         queue 0"
                    )
                });
            }
            None
        };
        let s = &l.srrctl;
        let queues = (0..m.queues)
            .map(|q| {
                let v = m.load(l.rx_queues.addr(q, RxReg::Srrctl));
                let units = s.bsizepacket.get(v) as usize;
                QueueConfig {
                    buf_size: if units == 0 {
                        s.default_size
                    } else {
                        units * s.unit
                    },
                    drop_en: v & s.drop_en != 0,
                }
            })
            .collect();
        RxConfig {
            upe: f & upe != 0,
            mpe: f & mpe != 0,
            bam: f & bam != 0,
            macs,
            mta,
            strip_crc: m.bit(l.crc_strip),
            max_frame,
            rss,
            write_hash: m.bit(r.pcsd),
            queues,
        }
    }

    /// The destination address filter (82576 §7.1.1.1, 82599 §7.1.1):
    /// promiscuous modes, broadcast accept, exact addresses, multicast table.
    fn accepts(&self, dst: &[u8; 6]) -> bool {
        if self.upe {
            return true;
        }
        let multicast = dst[0] & 1 != 0;
        if multicast {
            if self.mpe || (self.bam && *dst == [0xff; 6]) {
                return true;
            }
        } else if self.macs.contains(dst) {
            return true;
        }
        if multicast {
            if let Some((table, shift)) = &self.mta {
                let i = ((dst[5] as u32) << 8 | dst[4] as u32) >> shift & MTA_INDEX_MASK;
                return table[(i >> 5) as usize] & (1 << (i & 31)) != 0;
            }
        }
        false
    }
}

impl RxRing {
    /// The packet buffer address of the descriptor at head, fetching a
    /// batch of descriptors when none is prefetched.
    fn buffer(
        &mut self,
        m: &NicModel,
        q: u16,
        tail: u32,
        scratch: &mut [u8],
    ) -> Result<u64, DmaError> {
        if self.pos == self.len {
            let n = (self.available(tail) as usize)
                .min(FETCH_BATCH)
                .min((self.entries - self.head) as usize);
            let bytes = &mut scratch[..n * DESC_SIZE];
            let iova = self.desc_iova(self.head);
            m.dma
                .read(iova, bytes)
                .map_err(|e| m.fault(Dir::Rx, q, e))?;
            m.fetched(Dir::Rx, q, self.head, iova, bytes);
            for (i, d) in bytes.chunks_exact(DESC_SIZE).enumerate() {
                let mut a = [0u8; 8];
                a.copy_from_slice(&d[desc::PKT_ADDR..desc::PKT_ADDR + 8]);
                self.cache[i] = u64::from_le_bytes(a);
            }
            self.pos = 0;
            self.len = n;
        }
        Ok(self.cache[self.pos])
    }
}

/// Where a frame goes after the filters.
struct Target {
    q: u16,
    rss: RssResult,
    ptype: u32,
}

impl RxEngine {
    /// Take up to `budget` frames from the wire. True if any came.
    pub(crate) fn poll(&mut self, m: &NicModel, budget: usize) -> bool {
        let gen = m.rx_config_gen.load(Ordering::Acquire);
        if gen != self.config_gen {
            self.config = RxConfig::build(m);
            self.config_gen = gen;
        }
        let paced = m.flow_control || m.wire.waits_for_receiver();
        let mut got = 0;
        while got < budget {
            if paced && !self.rings_have_room(m) {
                // XOFF (or a replay): the frames wait on the wire instead of
                // being dropped.
                break;
            }
            let len = match m.wire.recv(&mut self.frame[..MAX_FRAME]) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    bump(&m.counters.wire_errors);
                    m.note(|| format!("wire {}: receive failed: {e}", m.wire.describe()));
                    break;
                }
            };
            got += 1;
            self.receive(m, len);
        }
        got > 0
    }

    /// Whether every enabled ring has free descriptors for a largest frame
    /// (the frame's ring is known only after classification). Until the
    /// driver has had the receiver and a ring on together for the first
    /// time, there is no room either: with flow control (or from a replay
    /// wire, [`crate::wire::Wire::waits_for_receiver`]), frames sent before
    /// the port was set up wait for it (a deliberate difference from the
    /// chips, which drop them; the emulation's peers start in any order).
    /// Later, a receiver or ring the driver turned off drops and counts, as
    /// on the chips.
    fn rings_have_room(&mut self, m: &NicModel) -> bool {
        if !self.ever_enabled {
            if !m.bit(m.layout.rx_enable) || self.rings.iter().all(Option::is_none) {
                return false;
            }
            self.ever_enabled = true;
        }
        if !m.bit(m.layout.rx_enable) {
            // Turned off since: frames are taken and dropped.
            return true;
        }
        self.rings.iter().enumerate().all(|(q, r)| match r {
            None => true,
            Some(ring) => {
                let buf = self
                    .config
                    .queues
                    .get(q)
                    .map_or(0, |c| c.buf_size)
                    .max(1024);
                let need = self.config.max_frame.div_ceil(buf) as u32;
                ring.available(m.rxq[q].tail.load(Ordering::Acquire)) >= need
            }
        })
    }

    /// Checks, filters and classification; None if the frame is dropped.
    fn classify(&mut self, m: &NicModel, len: &mut usize) -> Option<Target> {
        bump(&m.counters.rx_frames);
        if !m.bit(m.layout.rx_enable) {
            bump(&m.counters.rx_disabled);
            return None;
        }
        if *len < ETH_HLEN {
            bump(&m.counters.rx_runt);
            return None;
        }
        if *len < ETH_MIN_FRAME {
            // The sender's MAC would have padded it (a TAP peer does not).
            self.frame[*len..ETH_MIN_FRAME].fill(0);
            *len = ETH_MIN_FRAME;
        }
        let f = &self.frame[..*len];
        let tagged = frame::l3(f).is_some_and(|(off, _)| off > ETH_HLEN);
        let max = self.config.max_frame + if tagged { VLAN_TAG_LEN } else { 0 };
        if *len + ETH_FCS_LEN > max {
            m.count(Ctr::Roc, 1);
            bump(&m.counters.rx_oversize);
            return None;
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&f[..6]);
        if !self.config.accepts(&dst) {
            bump(&m.counters.rx_filtered);
            return None;
        }
        let flow = frame::parse(f);
        let rss = match &self.config.rss {
            Some(r) => r.classify(&flow),
            None => RssResult {
                hash: 0,
                kind: rss_type::NONE,
                queue: 0,
            },
        };
        let q = rss.queue;
        let active = q < m.queues
            && m.rxq[q as usize].state.load(Ordering::Acquire) == ACTIVE
            && self.rings[q as usize].is_some();
        if !active {
            bump(&m.counters.rx_disabled);
            m.note(|| format!("frame of {len} bytes dropped: RX queue {q} is not enabled"));
            return None;
        }
        Some(Target {
            q,
            rss,
            ptype: frame::packet_type(&flow),
        })
    }

    /// One frame of `len` bytes in `self.frame`.
    fn receive(&mut self, m: &NicModel, mut len: usize) {
        let Some(t) = self.classify(m, &mut len) else {
            return;
        };
        let q = t.q;
        m.frame(Dir::Rx, q, &self.frame[..len]);
        let qc = self.config.queues[q as usize];
        let frame_len = len;
        // Without CRC stripping the FCS goes to memory too (and counts in the length).
        let data_len = if self.config.strip_crc {
            len
        } else {
            let fcs = frame::fcs(&self.frame[..len]);
            self.frame[len..len + ETH_FCS_LEN].copy_from_slice(&fcs);
            len + ETH_FCS_LEN
        };
        let shared = &m.rxq[q as usize];
        let Some(ring) = self.rings[q as usize].as_mut() else {
            return;
        };
        let need = data_len.div_ceil(qc.buf_size) as u32;
        let tail = shared.tail.load(Ordering::Acquire);
        if ring.available(tail) < need {
            m.count(Ctr::Rnbc, 1);
            if qc.drop_en {
                if let Some(n) = m.queue_counter(q) {
                    bump(&m.queue_drop[n]);
                }
            } else {
                m.count(Ctr::Mpc, 1);
            }
            bump(&m.counters.rx_no_descriptor);
            m.note(|| {
                format!("frame of {frame_len} bytes dropped: RX queue {q} has no free descriptor")
            });
            return;
        }
        let mut off = 0;
        let mut delivered = true;
        for i in 0..need {
            let last = i + 1 == need;
            let index = ring.head;
            let addr = match ring.buffer(m, q, tail, &mut self.scratch) {
                Ok(a) => a,
                Err(e) => {
                    self.rings[q as usize] = None;
                    m.queue_error(Dir::Rx, q, shared, || {
                        format!("descriptor fetch at index {index} failed: {e}")
                    });
                    return;
                }
            };
            let chunk = (data_len - off).min(qc.buf_size);
            let mut st = status::DD.bit();
            let mut wb_len = chunk as u16;
            if let Err(e) = m.buffer_write(Dir::Rx, q, addr, &self.frame[off..off + chunk]) {
                // The buffer is unreachable: the frame ends here, flagged.
                bump(&m.counters.rx_dma_faults);
                m.note(|| {
                    format!(
                        "RX queue {q} descriptor {index}: frame dropped, buffer {addr:#x} \
                         refused: {e}"
                    )
                });
                st |= status::EOP.bit() | m.layout.rx_error;
                wb_len = 0;
                delivered = false;
            } else if last {
                st |= status::EOP.bit();
            }
            let ends = st & status::EOP.bit() != 0;
            let mut wb = [0u8; DESC_SIZE];
            if ends && delivered {
                let mut dw0 = info::RSS_TYPE.value(t.rss.kind);
                dw0 = info::PACKET_TYPE.set(dw0, t.ptype);
                wb[desc::WB_INFO..desc::WB_INFO + 4].copy_from_slice(&dw0.to_le_bytes());
                if self.config.write_hash {
                    wb[desc::WB_RSS_HASH..desc::WB_RSS_HASH + 4]
                        .copy_from_slice(&t.rss.hash.to_le_bytes());
                }
            }
            wb[desc::WB_LENGTH..desc::WB_LENGTH + 2].copy_from_slice(&wb_len.to_le_bytes());
            m.hostile_rx_writeback(&mut wb, &mut st, qc.buf_size);
            let iova = ring.desc_iova(index);
            // Everything but the status first, then the status with DD, so
            // a driver that sees DD sees the rest (82599 §7.1.6.2).
            let written = m
                .dma
                .write(iova, &wb)
                .and_then(|()| {
                    m.dma
                        .store_u32_release(iova + desc::WB_STATUS_ERROR as u64, st)
                })
                .map_err(|e| m.fault(Dir::Rx, q, e));
            if let Err(e) = written {
                self.rings[q as usize] = None;
                m.queue_error(Dir::Rx, q, shared, || {
                    format!("write-back of descriptor {index} failed: {e}")
                });
                return;
            }
            m.written_back(Dir::Rx, q, index, iova, &wb, (desc::WB_STATUS_ERROR, st));
            ring.advance();
            shared.head.store(ring.head, Ordering::Release);
            off += chunk;
            if ends {
                break;
            }
        }
        if !delivered {
            return;
        }
        // Octet counters include the FCS (82576 §8.19, 82599 §8.2.3.23).
        let octets = (frame_len + ETH_FCS_LEN) as u64;
        m.count(Ctr::Gprc, 1);
        m.count(Ctr::Tpr, 1);
        m.count(Ctr::Gorc, octets);
        m.count(Ctr::Tor, octets);
        if self.frame[0] & 1 != 0 {
            if self.frame[..6] == [0xff; 6] {
                m.count(Ctr::Bprc, 1);
            } else {
                m.count(Ctr::Mprc, 1);
            }
        }
        if let Some(n) = m.queue_counter(q) {
            bump(&m.queue_rx[n]);
        }
        bump(&m.counters.rx_delivered);
    }
}
