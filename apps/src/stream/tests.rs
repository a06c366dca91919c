//! Tests of the frame format, the pattern and the verifier together
//! (frames are built, damaged and fed to a verifier).
#![forbid(unsafe_code)]

use super::format::*;
use super::pattern::*;
use super::verify::*;
use crate::net::{self, Flow, PAYLOAD};
use spec::net::ethernet::HEADER_LEN as ETH_LEN;
use spec::net::ipv4::HEADER_LEN as IPV4_LEN;
use spec::net::Ipv4Packet;

fn flow() -> Flow {
    Flow {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_ip: [10, 0, 0, 1],
        dst_ip: [10, 0, 0, 2],
        src_port: 4000,
        dst_port: 5000,
    }
}

pub(super) fn header(lap: u32, offset: u64, len: u32, start: u64, end: u64) -> StreamHeader {
    StreamHeader {
        stream: 0,
        flags: if offset + len as u64 == end {
            FLAG_LAST
        } else {
            0
        },
        lap,
        len,
        offset,
        start,
        end,
    }
}

#[test]
fn template_headers_equal_built_headers_at_any_offset() {
    let t = HeaderTemplate::new(&flow(), &header(3, 0, 1458, 0, 1 << 30));
    for offset in [0u64, 1458, 7 * 1458 + 512, (1 << 30) - 2 * 1458] {
        let h = header(3, offset, 1458, 0, 1 << 30);
        assert!(t.fits(h.lap, h.len, h.flags));
        let (mut a, mut b) = ([0u8; FRAME_HEADERS], [0xffu8; FRAME_HEADERS]);
        build_headers(&mut a, &flow(), &h);
        assert_eq!(t.write(&mut b, offset), FRAME_HEADERS);
        assert_eq!(a, b, "offset {offset}");
    }
    assert!(!t.fits(4, 1458, 0), "another lap");
    assert!(!t.fits(3, 100, 0), "another length");
    assert!(!t.fits(3, 1458, FLAG_LAST), "the last frame");
}

/// A frame as the NIC sends it: headers, pattern payload, checksums
/// filled in as the offload does.
fn frame(h: &StreamHeader, seed: u64) -> Vec<u8> {
    let mut f = vec![0u8; FRAME_HEADERS + h.len as usize];
    assert_eq!(build_headers(&mut f, &flow(), h), FRAME_HEADERS);
    pattern_fill(&mut f[FRAME_HEADERS..], h.offset, seed);
    net::offload_checksums_in_software(&mut f);
    f
}

/// The frames of one lap over [start, end), `per` payload bytes each.
fn lap_frames(lap: u32, start: u64, end: u64, per: u64) -> Vec<Vec<u8>> {
    (start..end)
        .step_by(per as usize)
        .map(|o| {
            let len = per.min(end - o) as u32;
            frame(&header(lap, o, len, start, end), DEFAULT_SEED)
        })
        .collect()
}

fn verify(frames: &[Vec<u8>]) -> Verifier {
    let mut v = Verifier::new(Expect::Pattern { seed: DEFAULT_SEED });
    for f in frames {
        v.accept_frame(f);
    }
    v
}

#[test]
fn header_round_trips_at_the_contracts_offsets() {
    let h = StreamHeader {
        stream: 0x0102,
        flags: FLAG_LAST,
        lap: 0x0304_0506,
        len: 1432,
        offset: 0x10_0000_0000 - 1432,
        start: 4096,
        end: 0x10_0000_0000,
    };
    let mut b = [0u8; HEADER_LEN];
    h.write_to(&mut b);
    assert_eq!(&b[..4], b"BLK1");
    assert_eq!(&b[4..8], &[1, 2, 0, 1]);
    assert_eq!(&b[8..12], &[3, 4, 5, 6]);
    assert_eq!(&b[12..16], &1432u32.to_be_bytes());
    assert_eq!(&b[32..40], &0x10_0000_0000u64.to_be_bytes());
    assert_eq!(StreamHeader::parse(&b), Ok(h));
    assert!(h.is_last());
    assert_eq!(payload_per_frame(1500), 1432);
    assert_eq!(payload_per_frame(9000), 8932);
}

#[test]
fn inconsistent_headers_are_refused_with_the_reason() {
    let ok = header(0, 100, 10, 0, 200);
    let err = |h: StreamHeader| {
        let mut b = [0u8; HEADER_LEN];
        h.write_to(&mut b);
        StreamHeader::parse(&b).unwrap_err()
    };
    assert_eq!(
        err(StreamHeader { start: 300, ..ok }),
        "range start 300 after its end 200"
    );
    assert_eq!(
        err(StreamHeader { offset: 195, ..ok }),
        "bytes [195, +10) outside the range [0, 200)"
    );
    assert_eq!(
        err(StreamHeader {
            offset: u64::MAX - 2,
            end: u64::MAX,
            ..ok
        }),
        format!(
            "bytes [{}, +10) outside the range [0, {})",
            u64::MAX - 2,
            u64::MAX
        )
    );
    assert_eq!(
        err(StreamHeader {
            flags: FLAG_LAST,
            ..ok
        }),
        "LAST frame ends at 110, not at the range end 200"
    );
    assert!(StreamHeader::parse(&[0; 39])
        .unwrap_err()
        .contains("39 bytes"));
    let mut b = [0u8; HEADER_LEN];
    ok.write_to(&mut b);
    b[0] = b'X';
    assert_eq!(
        StreamHeader::parse(&b).unwrap_err(),
        "magic 584c4b31, want 424c4b31"
    );
}

#[test]
fn built_headers_are_what_the_offload_expects() {
    let h = header(0, 0, 1432, 0, 1 << 20);
    let mut f = vec![0u8; FRAME_HEADERS + 1432];
    build_headers(&mut f, &flow(), &h);
    // Same Ethernet/IPv4/UDP bytes as pktgen's offloaded frames, but DF.
    let mut g = vec![0u8; f.len()];
    net::write_udp_headers(&mut g, f.len(), &flow());
    let l3 = ETH_LEN;
    assert_eq!(&f[l3 + 6..l3 + 8], &[0x40, 0], "DF");
    g[l3 + 6] = 0x40;
    assert_eq!(&f[..PAYLOAD], &g[..PAYLOAD]);
    assert_eq!(
        &f[l3 + 10..l3 + 12],
        &[0, 0],
        "IPv4 checksum left to the NIC"
    );
    assert_eq!(f[l3 + 8], 64, "TTL");
    assert_eq!(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]), 1500);
    // Without the offload's work the frame is corrupt; with it, good.
    assert_eq!(
        parse_frame(&f).unwrap_err(),
        FrameError::Corrupt(Corruption::IpChecksum)
    );
    pattern_fill(&mut f[FRAME_HEADERS..], 0, DEFAULT_SEED);
    net::offload_checksums_in_software(&mut f);
    let (got, payload) = parse_frame(&f).unwrap();
    assert_eq!(got, h);
    assert_eq!(payload, &f[FRAME_HEADERS..]);
    assert_eq!(parse_datagram(&f[PAYLOAD..]).unwrap().0, h);
}

#[test]
fn damaged_and_foreign_frames_are_told_apart() {
    let good = frame(&header(0, 0, 100, 0, 100), 1);
    let l4 = ETH_LEN + IPV4_LEN;
    // One payload bit: the UDP checksum catches it.
    let mut f = good.clone();
    f[FRAME_HEADERS + 50] ^= 1;
    assert_eq!(
        parse_frame(&f).unwrap_err(),
        FrameError::Corrupt(Corruption::UdpChecksum)
    );
    // UDP checksum 0: none was computed; the frame is taken.
    f[l4 + 6..l4 + 8].fill(0);
    assert!(parse_frame(&f).is_ok());
    // Ethernet padding after the datagram is not payload.
    let mut f = good.clone();
    f.extend_from_slice(&[0xee; 6]);
    assert_eq!(parse_frame(&f).unwrap().1.len(), 100);
    // A frame cut short, and a UDP length that disagrees.
    assert_eq!(
        parse_frame(&good[..good.len() - 1]).unwrap_err(),
        FrameError::Corrupt(Corruption::Length)
    );
    // A first fragment, with its IPv4 checksum redone.
    let mut f = good.clone();
    f[ETH_LEN + 6] = 0x20;
    Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]).fill_checksum();
    assert_eq!(
        parse_frame(&f).unwrap_err(),
        FrameError::Corrupt(Corruption::Fragment)
    );
    // Not ours: ARP, TCP, UDP without the magic, a runt.
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut tcp = good.clone();
    tcp[ETH_LEN + 9] = 6;
    let mut other = good.clone();
    other[PAYLOAD] = b'k';
    for f in [&arp[..], &tcp, &other, &good[..40]] {
        assert_eq!(parse_frame(f).unwrap_err(), FrameError::NotStream);
    }
    // The magic but a stream header that lies about its length.
    let mut f = frame(&header(0, 0, 100, 0, 200), 1);
    f[PAYLOAD + 12..PAYLOAD + 16].copy_from_slice(&99u32.to_be_bytes());
    assert_eq!(
        parse_datagram(&f[PAYLOAD..]).unwrap_err(),
        FrameError::Corrupt(Corruption::Length)
    );
}

#[test]
fn a_whole_stream_in_any_order_verifies() {
    let mut frames = lap_frames(0, 4096, 4096 + 100_000, 1432);
    let v = verify(&frames);
    let r = v.report();
    assert!(v.is_complete());
    assert_eq!(r.verified, 100_000);
    assert_eq!((r.mismatched, r.missing, r.duplicate), (0, 0, 0));
    assert_eq!(
        r.to_string(),
        "stream: range [4096, 104096) (97.66 KiB), 1 lap (1 complete), 1 stream\n\
         frames: 70 stream, 0 not stream, 0 bad\n\
         verified: 100000 bytes, 0 mismatched\n\
         missing: 0 bytes\n\
         duplicate: 0 bytes\n\
         complete: yes"
    );
    // Reversed, with every fifth frame twice: same bytes, duplicates counted.
    frames.reverse();
    let twice: Vec<Vec<u8>> = frames.iter().step_by(5).cloned().collect();
    frames.extend(twice);
    let v = verify(&frames);
    let r = v.report();
    assert!(v.is_complete());
    assert_eq!(r.verified, 100_000);
    // The 14 copies include the short last frame (100000 - 69 * 1432 bytes).
    assert_eq!(r.duplicate, 13 * 1432 + (100_000 - 69 * 1432));
    assert_eq!(r.frames, 84);
}

#[test]
fn missing_corrupt_and_foreign_frames_are_reported() {
    let mut frames = lap_frames(0, 0, 14320, 1432);
    frames.remove(3); // [4296, 5728)
    frames[5][FRAME_HEADERS + 7] ^= 0xff; // bad UDP checksum: not taken
    let mut arp = frames[0].clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    frames.push(arp);
    let v = verify(&frames);
    let r = v.report();
    assert!(!v.is_complete());
    assert_eq!(r.missing, 2 * 1432);
    assert_eq!(r.first_missing, [(0, 4296, 5728), (0, 8592, 10024)]);
    assert_eq!(r.verified, 14320 - 2 * 1432);
    let text = r.to_string();
    assert!(text.contains("frames: 8 stream, 1 not stream, 1 bad (1 UDP checksum)\n"));
    assert!(text.contains("missing: 2864 bytes (first: lap 0 [4296, 5728), lap 0 [8592, 10024))\n"));
    assert!(
        text.ends_with("complete: no (2864 bytes missing)"),
        "{text}"
    );
}

#[test]
fn a_wrong_byte_with_a_good_checksum_is_a_mismatch() {
    // The sender read a wrong byte from the disk: checksums are good.
    let h = header(0, 0, 1000, 0, 1000);
    let mut f = vec![0u8; FRAME_HEADERS + 1000];
    build_headers(&mut f, &flow(), &h);
    pattern_fill(&mut f[FRAME_HEADERS..], 0, DEFAULT_SEED);
    f[FRAME_HEADERS + 123] ^= 4;
    f[FRAME_HEADERS + 124] ^= 4;
    net::offload_checksums_in_software(&mut f);
    let v = verify(&[f.clone()]);
    let r = v.report();
    assert_eq!((r.verified, r.mismatched, r.missing), (998, 2, 0));
    assert_eq!(r.first_mismatches, [(0, 123), (0, 124)]);
    assert!(r.to_string().contains(
        "verified: 998 bytes, 2 mismatched (first: lap 0 offset 123, lap 0 offset 124)\n"
    ));
    // Complete (every byte came) but not matching: complete says yes,
    // the mismatch is what fails the run.
    assert!(v.is_complete());
    // Another seed: only the bytes the two patterns share by chance match.
    let mut w = Verifier::new(Expect::Pattern { seed: 1 });
    w.accept_frame(&f);
    let mut other = vec![0u8; 1000];
    pattern_fill(&mut other, 0, 1);
    let same = f[FRAME_HEADERS..]
        .iter()
        .zip(&other)
        .filter(|(a, b)| a == b)
        .count() as u64;
    assert!(same < 20, "{same}");
    assert_eq!(
        (w.report().verified, w.report().mismatched),
        (same, 1000 - same)
    );
    // No expectation: received, not compared.
    let mut n = Verifier::new(Expect::None);
    n.accept_frame(&f);
    let r = n.report();
    assert_eq!((r.received, r.verified, r.mismatched), (1000, 0, 0));
    assert!(r
        .to_string()
        .contains("received: 1000 bytes, not compared (--expect none)\n"));
}

#[test]
fn laps_are_checked_separately() {
    let mut frames = lap_frames(0, 0, 5000, 1432);
    frames.extend(lap_frames(1, 0, 5000, 1432));
    // Lap 2 lacks its LAST frame, lap 3 is absent, lap 4 is complete.
    let mut lap2 = lap_frames(2, 0, 5000, 1432);
    lap2.pop();
    frames.extend(lap2);
    frames.extend(lap_frames(4, 0, 5000, 1432));
    // A frame of the first lap again is a duplicate of lap 0 only.
    frames.push(frames[0].clone());
    let v = verify(&frames);
    let r = v.report();
    assert_eq!((r.laps, r.complete_laps), (5, 3));
    assert_eq!(r.duplicate, 1432);
    assert_eq!(r.missing, (5000 - 3 * 1432) + 5000);
    assert_eq!(r.first_missing, [(2, 4296, 5000), (3, 0, 5000)]);
    assert_eq!(r.without_last, [2]);
    assert!(!v.is_complete());
    assert!(r
        .to_string()
        .ends_with("complete: no (5704 bytes missing; no LAST frame in lap 2)"));
    // A receiver that stops after two laps ignores the later ones.
    let mut v = Verifier::new(Expect::Pattern { seed: DEFAULT_SEED });
    v.limit_laps(2);
    for f in &frames {
        v.accept_frame(f);
    }
    let r = v.report();
    assert!(v.is_complete());
    assert_eq!((r.laps, r.complete_laps, r.later_laps), (2, 2, 7));
    assert!(r.to_string().contains(", 7 of later laps ignored\n"));
}

#[test]
fn headers_given_directly_are_checked_too() {
    let mut v = Verifier::new(Expect::None);
    v.accept(&header(0, 90, 20, 0, 100), &[0; 20]);
    v.accept(&header(0, 0, 20, 0, 100), &[0; 19]);
    let r = v.report();
    assert_eq!((r.bad.header, r.bad.length, r.frames), (1, 1, 0));
    assert_eq!(r.range, None);
}

#[test]
fn a_frame_of_another_range_is_not_taken() {
    let mut frames = lap_frames(0, 0, 3000, 1432);
    frames.insert(1, frame(&header(0, 0, 1000, 0, 1000), DEFAULT_SEED));
    let v = verify(&frames);
    let r = v.report();
    assert_eq!(r.bad.other_range, 1);
    assert_eq!(r.verified, 3000);
    assert!(v.is_complete());
}

#[test]
fn an_expected_file_is_compared_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("disk.img");
    // The image holds the pattern for [0, 8000) only.
    let mut img = vec![0u8; 8000];
    pattern_fill(&mut img, 0, DEFAULT_SEED);
    img[5000] ^= 1;
    std::fs::write(&path, &img).unwrap();
    let frames = lap_frames(0, 4000, 9000, 1432);
    let file = std::fs::File::open(&path).unwrap();
    let mut v = Verifier::new(Expect::File(file));
    for f in &frames {
        v.accept_frame(f);
    }
    let r = v.report();
    // Byte 5000 differs, and 1000 bytes lie past the file's end.
    assert_eq!(r.mismatched, 1 + 1000);
    assert_eq!(r.verified, 5000 - 1001);
    assert_eq!(r.first_mismatches[0], (0, 5000));
    assert_eq!(r.first_mismatches[1], (0, 8000));
    assert_eq!(
        r.note.as_deref(),
        Some("the expected file ends at byte 8000: bytes after it count as mismatched")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn expect_arguments() {
    assert!(matches!(
        Expect::parse("pattern"),
        Ok(Expect::Pattern { seed: DEFAULT_SEED })
    ));
    assert!(matches!(
        Expect::parse("pattern:0x10"),
        Ok(Expect::Pattern { seed: 16 })
    ));
    assert!(matches!(
        Expect::parse("pattern:17"),
        Ok(Expect::Pattern { seed: 17 })
    ));
    assert!(matches!(Expect::parse("none"), Ok(Expect::None)));
    assert!(Expect::parse("pattern:x")
        .unwrap_err()
        .contains("not a seed"));
    assert!(Expect::parse("bytes").unwrap_err().contains("use pattern"));
    assert_eq!(
        Expect::parse("file:/nonexistent/disk.img").unwrap_err(),
        "cannot open expected disk image /nonexistent/disk.img: No such file or directory; \
         give the image the stream was read from"
    );
}

#[test]
fn nothing_received_is_not_complete() {
    let v = Verifier::new(Expect::None);
    assert!(!v.is_complete());
    let r = v.report();
    assert!(r.to_string().starts_with("stream: no stream frame seen\n"));
    assert!(r.to_string().ends_with("complete: no (no stream frame)"));
}

#[test]
fn a_lap_cut_by_the_senders_stop_is_due_up_to_the_cut_only() {
    // Lap 0 whole, lap 1 up to byte 2864 (two frames): the sender stopped
    // there (a deadline), so nothing after it is missing.
    let mut frames = lap_frames(0, 0, 5000, 1432);
    frames.extend(lap_frames(1, 0, 5000, 1432).into_iter().take(2));
    let mut v = verify(&frames);
    assert!(!v.is_complete(), "without the cut, lap 1 lacks bytes");
    v.sender_stopped_at(1, 2864);
    let r = v.report();
    assert!(v.is_complete(), "{r}");
    assert_eq!((r.laps, r.missing), (2, 0));
    assert!(r.without_last.is_empty());
    assert!(r
        .to_string()
        .contains("stopped: the sender stopped in lap 1 at byte 2864"));
    // A hole before the cut is still missing.
    let mut holed = lap_frames(0, 0, 5000, 1432);
    let lap1 = lap_frames(1, 0, 5000, 1432);
    holed.extend([lap1[0].clone(), lap1[2].clone()]);
    let mut v = verify(&holed);
    v.sender_stopped_at(1, 4296);
    let r = v.report();
    assert!(!v.is_complete());
    assert_eq!(r.missing, 1432);
    assert_eq!(r.first_missing, [(1, 1432, 2864)]);
    // A stop on a lap boundary: that lap is not due at all.
    let mut v = verify(&lap_frames(0, 0, 5000, 1432));
    v.sender_stopped_at(1, 0);
    let r = v.report();
    assert!(v.is_complete());
    assert_eq!((r.laps, r.missing), (1, 0));
}
