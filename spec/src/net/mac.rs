//! MAC addresses (IEEE 802 48-bit): parsed from and shown as the usual
//! colon-separated hex, `02:00:00:00:00:01`.

use core::fmt;
use core::str::FromStr;

/// A 48-bit MAC address, first byte first (as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The six bytes.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// The group (I/G) bit, bit 0 of the first byte (IEEE 802-2014 §8.2):
    /// multicast and broadcast addresses have it, station addresses do not.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl From<MacAddr> for [u8; 6] {
    fn from(m: MacAddr) -> Self {
        m.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A string that is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a MAC address is six two-digit hex fields separated by ':' or '-', \
             like 02:00:00:00:00:01",
        )
    }
}

impl core::error::Error for ParseMacError {}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either separator, hex
    /// digits of either case): exactly six two-digit fields.
    fn from_str(s: &str) -> Result<Self, ParseMacError> {
        let mut mac = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut mac {
            let p = parts.next().ok_or(ParseMacError)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseMacError);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| ParseMacError)?;
        }
        match parts.next() {
            None => Ok(MacAddr(mac)),
            Some(_) => Err(ParseMacError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    #[test]
    fn shows_and_parses_colon_hex() {
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        assert_eq!(m.to_string(), "02:00:00:00:00:01");
        assert_eq!("02:00:00:00:00:01".parse(), Ok(m));
        assert_eq!(
            "02-00-00-00-00-0A".parse(),
            Ok(MacAddr([2, 0, 0, 0, 0, 10]))
        );
        assert_eq!(MacAddr::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
        assert_eq!(<[u8; 6]>::from(m), [2, 0, 0, 0, 0, 1]);
        assert_eq!(MacAddr::from([2, 0, 0, 0, 0, 1]), m);
        assert!(MacAddr::BROADCAST.is_multicast() && !m.is_multicast());
    }

    #[test]
    fn bad_strings_are_refused() {
        for s in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:0a:zz",
            "02:00:00:00:00:0g",
            "2:00:00:00:00:01",
            "002:00:00:00:00:01",
            "+2:00:00:00:00:01",
            "02:00:00:00:00:01:",
        ] {
            assert_eq!(s.parse::<MacAddr>(), Err(ParseMacError), "{s}");
        }
        assert!(ParseMacError.to_string().contains("02:00:00:00:00:01"));
    }
}
