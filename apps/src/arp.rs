//! Where a sender's frames go on the link: the destination MAC from
//! `--dst-mac`, or learned by ARP (RFC 826) from `--dst-ip`; and answering
//! ARP for our own `--src-ip` while a run lasts, so the peer's stack can
//! send back to us (ICMP errors, its own ARP checks).
//!
//! Broadcast is never a default where the frames reach a real network (a
//! real port, or a TAP interface into the host's stack): a disk streamed to
//! ff:ff:ff:ff:ff:ff floods every port of the LAN.
#![forbid(unsafe_code)]

use crate::open::device::DeviceSpec;
use crate::AppResult;
use dma::Buf;
use drivers::nic::{RxPacket, RxQueue, TxPacket, TxQueue};
use drivers::regs::RegisterAccess;
use spec::net::arp::{self, operation};
use spec::net::ethernet::{self, ethertype};
use spec::net::{ArpPacket, EthernetFrame, MacAddr};
use std::time::{Duration, Instant};

/// Default of `--arp-timeout`: how long a sender asks before it gives up.
pub const DEFAULT_ARP_TIMEOUT: Duration = Duration::from_secs(3);
/// A request goes out this often while no reply came (3 tries in the
/// default timeout).
pub const ARP_RETRY: Duration = Duration::from_secs(1);

/// Help text of `--dst-mac`, shared by the senders.
pub const DST_MAC_HELP: &str = "Destination MAC: aa:bb:cc:dd:ee:ff, `broadcast` \
(ff:ff:ff:ff:ff:ff, only when asked), or `arp` (ask --dst-ip by ARP). Default: ARP \
on a real port (a PCI address) or an emulated port on a tap: wire, where the frames \
reach a real network stack; broadcast on the other emulated wires (pair, loop, pcap, \
unix), which have nothing to ask.";

/// Where the frames go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// This MAC (given, or broadcast when asked for).
    Mac([u8; 6]),
    /// The MAC that answers an ARP request for the destination IP.
    Arp,
}

/// The destination that `--dst-mac` (None: not given) means for frames
/// sent on the port `nic` (a device string): see [`DST_MAC_HELP`].
pub fn choose_destination(dst_mac: Option<&str>, nic: &DeviceSpec) -> Result<Destination, String> {
    match dst_mac {
        Some(s) => parse_dst_mac(s).map_err(|e| format!("--dst-mac {e}")),
        None => Ok(match nic {
            DeviceSpec::EmuNic(n) if !n.wire.starts_with("tap:") => {
                Destination::Mac(MacAddr::BROADCAST.0)
            }
            _ => Destination::Arp,
        }),
    }
}

/// Whether a port of `chip` named `port`, with `have` TX queues, takes
/// `--threads threads` senders (one TX queue each) and, with `arp`, the
/// TX queue after them for ARP frames. Refused in the sender's terms,
/// naming --threads and the most that fit, where the driver would say
/// only `tx_queues = 9`.
pub fn check_tx_queues(
    threads: u16,
    arp: bool,
    chip: drivers::nic::Chip,
    port: &str,
    have: u16,
) -> Result<(), String> {
    let need = threads.saturating_add(u16::from(arp));
    if need <= have {
        return Ok(());
    }
    Err(match (arp, have) {
        (false, _) => format!(
            "--threads {threads}: the {chip} port {port} has {have} TX queues, one per \
             thread; give --threads {have} or less"
        ),
        (true, 0..=1) => format!(
            "--threads {threads}: with the ARP queue the {chip} port {port} needs {need} TX \
             queues, it has {have}; give a port with 2 or more"
        ),
        (true, _) => format!(
            "--threads {threads}: with the ARP queue the {chip} port {port} needs {need} TX \
             queues, it has {have}; give --threads {} or less",
            have - 1
        ),
    })
}

/// Parse a `--dst-mac` value: a MAC address, `broadcast` or `arp`.
pub fn parse_dst_mac(s: &str) -> Result<Destination, String> {
    match s.trim() {
        "arp" => Ok(Destination::Arp),
        "broadcast" => Ok(Destination::Mac(MacAddr::BROADCAST.0)),
        t => t
            .parse::<MacAddr>()
            .map(|m| Destination::Mac(m.0))
            .map_err(|_| {
                format!("'{s}' is not a MAC address like 02:00:00:00:00:02, `broadcast` or `arp`")
            }),
    }
}

/// Parse `--arp-timeout` (seconds, more than 0).
pub fn parse_arp_timeout(s: &str) -> Result<f64, String> {
    match crate::parse_seconds(s) {
        Ok(t) if t > 0.0 => Ok(t),
        Ok(_) => Err("--arp-timeout must be more than 0 seconds".into()),
        Err(e) => Err(e),
    }
}

/// An Ethernet frame holding an ARP packet for Ethernet/IPv4, padded to the
/// minimum frame length.
pub fn write_arp_frame(
    frame: &mut [u8],
    op: u16,
    (src_mac, src_ip): ([u8; 6], [u8; 4]),
    (dst_mac, target_mac, target_ip): ([u8; 6], [u8; 6], [u8; 4]),
) -> usize {
    let len = ethernet::MIN_FRAME_LEN;
    frame[..len].fill(0);
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..len]);
    eth.set_dst_addr(MacAddr(dst_mac));
    eth.set_src_addr(MacAddr(src_mac));
    eth.set_ethertype(ethertype::ARP);
    let mut a = ArpPacket::new_unchecked(&mut eth.payload_mut()[..arp::PACKET_LEN]);
    a.set_ethernet_ipv4();
    a.set_operation(op);
    a.set_sender_mac(MacAddr(src_mac));
    a.set_sender_ip(src_ip);
    a.set_target_mac(MacAddr(target_mac));
    a.set_target_ip(target_ip);
    len
}

/// The Ethernet/IPv4 ARP packet a received frame holds, if it holds one.
pub fn arp_of(frame: &[u8]) -> Option<ArpPacket<&[u8]>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != ethertype::ARP {
        return None;
    }
    let a = ArpPacket::new_checked(&frame[ethernet::HEADER_LEN..]).ok()?;
    a.is_ethernet_ipv4().then_some(a)
}

/// The ARP side of a sending port: its RX queue (nothing else reads it) and
/// a TX queue for ARP frames, our MAC and IPv4 address.
pub struct ArpAgent<R: RegisterAccess> {
    rx: RxQueue<R>,
    tx: TxQueue<R>,
    mac: [u8; 6],
    ip: [u8; 4],
    pkts: Vec<RxPacket>,
    /// ARP requests for our address answered.
    pub answered: u64,
}

impl<R: RegisterAccess> ArpAgent<R> {
    /// An agent for `mac`/`ip` on the port's queues `rx` and `tx`.
    pub fn new(rx: RxQueue<R>, tx: TxQueue<R>, mac: [u8; 6], ip: [u8; 4]) -> Self {
        ArpAgent {
            rx,
            tx,
            mac,
            ip,
            pkts: Vec::with_capacity(64),
            answered: 0,
        }
    }

    /// Send one ARP frame (from the RX queue's pool); false when no buffer
    /// or no ring slot was free (the caller's retry sends it again).
    fn send(&mut self, op: u16, dst_mac: [u8; 6], target: ([u8; 6], [u8; 4])) -> AppResult<bool> {
        self.tx.clean_into(self.rx.cache_mut());
        let Some(mut b): Option<Buf> = self.rx.cache_mut().alloc() else {
            return Ok(false);
        };
        let len = write_arp_frame(
            b.as_mut_slice(),
            op,
            (self.mac, self.ip),
            (dst_mac, target.0, target.1),
        );
        b.set_len(len);
        let mut v = vec![TxPacket::new(b)];
        let sent = self.tx.tx_batch(&mut v)?;
        // A packet the ring did not take goes back to the pool with `v`.
        Ok(sent == 1)
    }

    /// Take what the port received: answer ARP requests for our address;
    /// return the sender MAC of a reply from `want` (when asked for one).
    fn take(&mut self, want: Option<[u8; 4]>) -> AppResult<Option<[u8; 6]>> {
        let mut found = None;
        loop {
            let n = self.rx.rx_batch(&mut self.pkts, 64)?;
            if n == 0 {
                break;
            }
            let mut requests = Vec::new();
            for p in self.pkts.drain(..) {
                if let Some(a) = arp_of(p.buf.as_slice()) {
                    let op = a.operation();
                    if op == operation::REQUEST && a.target_ip() == self.ip {
                        requests.push((a.sender_mac().0, a.sender_ip()));
                    }
                    // A reply, or a request from the host asked for (it
                    // tells its MAC too, RFC 826's merge step).
                    if want.is_some_and(|w| a.sender_ip() == w)
                        && (op == operation::REPLY || op == operation::REQUEST)
                        && !a.sender_mac().is_multicast()
                    {
                        found = Some(a.sender_mac().0);
                    }
                }
                self.rx.recycle(p.buf);
            }
            for (mac, ip) in requests {
                if self.send(operation::REPLY, mac, (mac, ip))? {
                    self.answered += 1;
                }
            }
        }
        Ok(found)
    }

    /// Answer the ARP requests for our address received since the last
    /// call; drop everything else the port received. Cheap when nothing
    /// arrived: one look at the RX ring.
    pub fn poll(&mut self) -> AppResult<()> {
        self.take(None).map(|_| ())
    }

    /// Ask who has `target` (a request each [`ARP_RETRY`]) until a reply
    /// comes or `timeout` passes; `port` names the port in the error.
    pub fn resolve(
        &mut self,
        target: [u8; 4],
        timeout: Duration,
        port: &str,
    ) -> AppResult<[u8; 6]> {
        let start = Instant::now();
        let mut next = start;
        let mut asked = 0u32;
        loop {
            if let Some(mac) = self.take(Some(target))? {
                return Ok(mac);
            }
            // The time is up before the next request goes out: a timeout of
            // N whole seconds sends N requests.
            let now = Instant::now();
            if now.duration_since(start) >= timeout {
                let ip = std::net::Ipv4Addr::from(target);
                let me = std::net::Ipv4Addr::from(self.ip);
                return Err(format!(
                    "no ARP reply from --dst-ip {ip} on {port} ({asked} request(s) from {me} in \
                     {:.1} s); check the peer's address and cabling, or give its MAC with \
                     --dst-mac (or --dst-mac broadcast)",
                    timeout.as_secs_f64()
                )
                .into());
            }
            if now >= next {
                if self.send(operation::REQUEST, MacAddr::BROADCAST.0, ([0; 6], target))? {
                    asked += 1;
                }
                next += ARP_RETRY;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::nic::Chip;

    #[test]
    fn threads_that_do_not_fit_the_port_are_named_with_the_most_that_fit() {
        let ok = |t, arp, chip: Chip| check_tx_queues(t, arp, chip, "p", chip.max_queues());
        assert_eq!(ok(7, true, Chip::I350), Ok(()));
        assert_eq!(ok(8, false, Chip::I350), Ok(()));
        assert_eq!(ok(15, true, Chip::I82576), Ok(()));
        assert_eq!(ok(16, true, Chip::X82599), Ok(()));
        assert_eq!(
            ok(8, true, Chip::I350).unwrap_err(),
            "--threads 8: with the ARP queue the I350 port p needs 9 TX queues, it has 8; \
             give --threads 7 or less"
        );
        assert_eq!(
            ok(16, true, Chip::I82576).unwrap_err(),
            "--threads 16: with the ARP queue the 82576 port p needs 17 TX queues, it has 16; \
             give --threads 15 or less"
        );
        assert_eq!(
            ok(9, false, Chip::I350).unwrap_err(),
            "--threads 9: the I350 port p has 8 TX queues, one per thread; give --threads 8 \
             or less"
        );
        let e = check_tx_queues(1, true, Chip::X82599, "p", 1).unwrap_err();
        assert!(
            e.ends_with("needs 2 TX queues, it has 1; give a port with 2 or more"),
            "{e}"
        );
    }

    fn spec(s: &str) -> DeviceSpec {
        s.parse().unwrap()
    }

    #[test]
    fn a_real_port_or_a_tap_wire_without_dst_mac_asks_by_arp() {
        assert_eq!(
            choose_destination(None, &spec("0000:03:00.0")),
            Ok(Destination::Arp)
        );
        assert_eq!(
            choose_destination(None, &spec("emu:igb,wire=tap:t0")),
            Ok(Destination::Arp)
        );
        for wire in ["pair:a", "loop", "pcap:x.pcap", "unix:/tmp/s"] {
            assert_eq!(
                choose_destination(None, &spec(&format!("emu:ixgbe,wire={wire}"))),
                Ok(Destination::Mac([0xff; 6])),
                "{wire}"
            );
        }
    }

    #[test]
    fn broadcast_and_arp_are_only_what_is_asked() {
        let real = spec("0000:03:00.0");
        for b in ["broadcast", "ff:ff:ff:ff:ff:ff"] {
            assert_eq!(
                choose_destination(Some(b), &real),
                Ok(Destination::Mac([0xff; 6]))
            );
        }
        assert_eq!(
            choose_destination(Some("0c:c4:7a:00:00:01"), &real),
            Ok(Destination::Mac([0x0c, 0xc4, 0x7a, 0, 0, 1]))
        );
        assert_eq!(
            choose_destination(Some("arp"), &spec("emu:igb,wire=pair:a")),
            Ok(Destination::Arp)
        );
        let e = choose_destination(Some("zz"), &real).unwrap_err();
        assert!(
            e.contains("--dst-mac 'zz'") && e.contains("broadcast"),
            "{e}"
        );
    }

    #[test]
    fn request_frames_parse_back() {
        let mut f = [0u8; 64];
        let n = write_arp_frame(
            &mut f,
            operation::REQUEST,
            ([2, 0, 0, 0, 0, 1], [10, 0, 0, 1]),
            ([0xff; 6], [0; 6], [10, 0, 0, 2]),
        );
        assert_eq!(n, 60);
        assert_eq!(&f[..6], &[0xff; 6]);
        let a = arp_of(&f[..n]).unwrap();
        assert_eq!(a.operation(), operation::REQUEST);
        assert_eq!(a.sender_ip(), [10, 0, 0, 1]);
        assert_eq!(a.target_ip(), [10, 0, 0, 2]);
        f[12] = 0x08;
        f[13] = 0x00;
        assert!(arp_of(&f[..n]).is_none(), "an IPv4 frame is not ARP");
    }
}
