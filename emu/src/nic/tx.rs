//! The transmit path (82576 datasheet §7.2, 82599 datasheet §7.2): the
//! device fetches descriptors from TDH up to TDT; context descriptors load
//! offload state, data descriptors gather their buffers until EOP; then the
//! checksums are inserted, short frames padded, the frame sent on the wire,
//! and DD written back into every descriptor that asked for it with RS.
//!
//! Only the advanced descriptors are modelled (DCMD.DEXT = 1); a legacy
//! descriptor stops the queue in the error state. TCP segmentation
//! (DCMD.TSE), VLAN insertion (DCMD.VLE) and the head write-back (TDWBAL)
//! are not modelled.
//!
//! The state it works on (the ring, its contexts, the packet being gathered)
//! is in `tx_state`.
#![forbid(unsafe_code)]

use super::checksum::{self, L4Type, TxContext};
use super::counters::bump;
use super::layout::Ctr;
use super::model::NicModel;
use super::queue_state::Dir;
use super::tx_state::{Discard, TxRing, CONTEXT_SLOTS, FETCH_BATCH};
use crate::wire::MAX_FRAME;
use crate::DmaError;
use spec::nic::adv_desc::tx::{self as desc, cmd_type_len as cmd, ctx, olinfo};
use spec::nic::adv_desc::DESC_SIZE;
use spec::nic::{ETH_FCS_LEN, ETH_MIN_FRAME};
use std::sync::atomic::Ordering;

fn dword(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

impl TxRing {
    /// Make the descriptor at head available in the cache (a batch fetch
    /// of up to the tail or the ring's end).
    fn fetch(&mut self, m: &NicModel, q: u16, tail: u32) -> Result<(), DmaError> {
        if self.pos < self.len {
            return Ok(());
        }
        let pending = (tail + self.entries - self.head) % self.entries;
        let n = (pending as usize)
            .min(FETCH_BATCH)
            .min((self.entries - self.head) as usize);
        let iova = self.desc_iova(self.head);
        let bytes = &mut self.cache[..n * DESC_SIZE];
        m.dma
            .read(iova, bytes)
            .map_err(|e| m.fault(Dir::Tx, q, e))?;
        m.fetched(Dir::Tx, q, self.head, iova, bytes);
        self.pos = 0;
        self.len = n;
        Ok(())
    }

    /// Process descriptors up to the driver's tail, at most `budget`.
    /// True if any was processed.
    pub(crate) fn run(&mut self, m: &NicModel, q: u16, budget: usize) -> bool {
        let shared = &m.txq[q as usize];
        let tail = shared.tail.load(Ordering::Acquire);
        let mut done = 0;
        while self.head != tail && done < budget {
            if m.flow_control && !m.wire.peer_ready() {
                // The peer sent XOFF: hold the descriptors until it has room.
                break;
            }
            if !m.link_up() || m.tx_stop.stopped() {
                // No link: the MAC sends nothing and the DMA engine holds
                // the queued descriptors until the link is back (what
                // Linux's ixgbe and e1000e watchdogs rely on: "we've lost
                // link, so the controller stops DMA"). Or an injected hung
                // engine ([`NicModel::stop_tx_after`]).
                break;
            }
            let index = self.head;
            if let Err(e) = self.fetch(m, q, tail) {
                m.queue_error(Dir::Tx, q, shared, || {
                    format!("descriptor fetch at index {index} failed: {e}")
                });
                return done > 0;
            }
            let mut d = [0u8; DESC_SIZE];
            d.copy_from_slice(&self.cache[self.pos * DESC_SIZE..(self.pos + 1) * DESC_SIZE]);
            let c = dword(&d, desc::CMD_TYPE_LEN);
            if c & cmd::DEXT.bit() == 0 {
                m.queue_error(Dir::Tx, q, shared, || {
                    format!(
                        "descriptor {index} is a legacy descriptor (DCMD.DEXT = 0), which is not \
                         modelled; use advanced descriptors"
                    )
                });
                return done > 0;
            }
            match cmd::DTYP.get(c) {
                cmd::DTYP_CONTEXT => self.load_context(&d),
                cmd::DTYP_DATA => {
                    if let Err(e) = self.data(m, q, &d, c) {
                        m.queue_error(Dir::Tx, q, shared, || {
                            format!("descriptor {index}: packet buffer refused: {e}")
                        });
                        return done > 0;
                    }
                }
                other => {
                    bump(&m.counters.tx_malformed);
                    m.note(|| {
                        format!("TX queue {q} descriptor {index}: unknown DTYP {other:#x} skipped")
                    });
                }
            }
            if c & cmd::RS.bit() != 0 && !m.hostile_drops_tx_dd() {
                // The write-back format: DD in the status dword (82599 §7.2.3.2.4).
                let wb = m
                    .dma
                    .store_u32_release(
                        self.desc_iova(index) + desc::WB_STATUS as u64,
                        olinfo::DD.bit(),
                    )
                    .map_err(|e| m.fault(Dir::Tx, q, e));
                if let Err(e) = wb {
                    m.queue_error(Dir::Tx, q, shared, || {
                        format!("write-back of descriptor {index} failed: {e}")
                    });
                    return true;
                }
                // The descriptor now holds the driver's bytes and DD.
                let status = (desc::WB_STATUS, olinfo::DD.bit());
                m.written_back(Dir::Tx, q, index, self.desc_iova(index), &d, status);
            }
            self.pos += 1;
            self.head = (self.head + 1) % self.entries;
            shared.head.store(self.head, Ordering::Release);
            done += 1;
        }
        done > 0
    }

    /// A context descriptor: load its slot.
    fn load_context(&mut self, d: &[u8]) {
        let lens = dword(d, ctx::VLAN_MACIP_LENS);
        let tucmd = dword(d, ctx::TYPE_TUCMD_MLHL);
        let idx = ctx::IDX.get(dword(d, ctx::MSS_L4LEN_IDX)) as usize % CONTEXT_SLOTS;
        let l4 = match ctx::TUCMD_L4T.get(tucmd) {
            ctx::L4T_UDP => L4Type::Udp,
            ctx::L4T_TCP => L4Type::Tcp,
            ctx::L4T_SCTP => L4Type::Sctp,
            _ => L4Type::Reserved,
        };
        self.contexts[idx] = Some(TxContext {
            maclen: ctx::MACLEN.get(lens) as usize,
            iplen: ctx::IPLEN.get(lens) as usize,
            ipv4: tucmd & ctx::TUCMD_IPV4.bit() != 0,
            l4,
        });
    }

    /// A data descriptor: gather its buffer; on EOP, finish the packet. A
    /// buffer the IOMMU refuses is an error that stops the queue, as a
    /// refused ring does: the device is stopped, neither sending the packet
    /// nor completing it, so the driver never takes a frame that did not go
    /// out for one sent.
    fn data(&mut self, m: &NicModel, q: u16, d: &[u8], c: u32) -> Result<(), DmaError> {
        let p = &mut self.packet;
        if !p.open {
            p.open = true;
            p.first_cmd = c;
            p.first_olinfo = dword(d, desc::OLINFO_STATUS);
            p.descriptors = 0;
            p.drop = None;
            p.len = 0;
        }
        p.descriptors += 1;
        let len = cmd::DTALEN.get(c) as usize;
        let mut a = [0u8; 8];
        a.copy_from_slice(&d[desc::ADDR..desc::ADDR + 8]);
        let addr = u64::from_le_bytes(a);
        if p.drop.is_none() {
            let at = p.len;
            if let Some(max) = m
                .layout
                .max_tx_desc_per_packet
                .filter(|&x| p.descriptors > x)
            {
                p.drop = Some(Discard::TooManyDescriptors(max));
            } else if at + len > MAX_FRAME {
                p.drop = Some(Discard::TooLong(at + len));
            } else {
                if let Err(e) = m.buffer_read(Dir::Tx, q, addr, &mut p.data[at..at + len]) {
                    bump(&m.counters.tx_dma_faults);
                    return Err(e);
                }
                p.len = at + len;
            }
        }
        if c & cmd::EOP.bit() != 0 {
            m.tx_stop.frame_done();
            self.finish(m, q);
        }
        Ok(())
    }

    /// EOP: offload, pad and send the packet (or count why not).
    fn finish(&mut self, m: &NicModel, q: u16) {
        let p = &mut self.packet;
        p.open = false;
        if let Some(why) = p.drop {
            bump(&m.counters.tx_malformed);
            m.note(|| format!("TX queue {q}: packet dropped: {why:?}"));
            return;
        }
        if p.first_cmd & cmd::TSE.bit() != 0 {
            bump(&m.counters.tx_malformed);
            m.note(|| format!("TX queue {q}: packet dropped: TSO (DCMD.TSE) is not modelled"));
            return;
        }
        let popts = p.first_olinfo;
        let (ixsm, txsm) = (
            popts & olinfo::IXSM.bit() != 0,
            popts & olinfo::TXSM.bit() != 0,
        );
        if ixsm || txsm {
            let idx = olinfo::IDX.get(popts) as usize % CONTEXT_SLOTS;
            let result = match &self.contexts[idx] {
                Some(ctx) => checksum::apply(&mut p.data[..p.len], ctx, ixsm, txsm)
                    .map_err(|e| e.to_string()),
                None => Err(format!("no context descriptor loaded slot {idx}")),
            };
            if let Err(why) = result {
                bump(&m.counters.tx_offload_errors);
                m.note(|| format!("TX queue {q}: checksum offload not applied: {why}"));
            }
        }
        if p.len < ETH_MIN_FRAME && m.bit(m.layout.tx_pad) {
            p.data[p.len..ETH_MIN_FRAME].fill(0);
            p.len = ETH_MIN_FRAME;
        }
        if !m.link_up() {
            bump(&m.counters.tx_link_down);
            return;
        }
        if let Err(e) = m.wire.send(&p.data[..p.len]) {
            bump(&m.counters.wire_errors);
            m.note(|| format!("wire {}: send failed: {e}", m.wire.describe()));
            return;
        }
        m.frame(Dir::Tx, q, &p.data[..p.len]);
        bump(&m.counters.tx_frames);
        let octets = (p.len + ETH_FCS_LEN) as u64;
        m.count(Ctr::Gptc, 1);
        m.count(Ctr::Tpt, 1);
        m.count(Ctr::Gotc, octets);
    }
}
