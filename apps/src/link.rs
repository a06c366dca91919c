//! A port's link, as the NIC apps handle it: at start each port's link is
//! waited for (`--link-timeout`) and named with its speed and duplex; in a
//! run, a link that goes down and comes back is an event with its time
//! ([`LinkWatch`]; [`IdleLinkCheck`] for the apps that receive or forward).
#![forbid(unsafe_code)]

use crate::AppResult;
use drivers::nic::{LinkStatus, Nic, NicError};
use drivers::regs::RegisterAccess;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The `--link-timeout` option of every app that opens a NIC port.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct LinkArgs {
    /// Seconds to wait at start for each port's link to come up; a port
    /// still without link then ends the run with an error naming it.
    /// 0: do not wait (the link must be up already).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = crate::parse_seconds)]
    pub link_timeout: f64,
}

impl LinkArgs {
    /// The timeout as a duration (the driver's `NicOptions::link_timeout`).
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.link_timeout)
    }
}

/// "10 Gb/s full duplex", "100 Mb/s half duplex".
pub fn describe(s: &LinkStatus) -> String {
    let speed = match s.speed_mbps {
        0 => "unknown speed".to_string(),
        m if m >= 1000 && m % 1000 == 0 => format!("{} Gb/s", m / 1000),
        m if m >= 1000 => format!("{} Gb/s", m as f64 / 1000.0),
        m => format!("{m} Mb/s"),
    };
    let duplex = if s.full_duplex { "full" } else { "half" };
    format!("{speed} {duplex} duplex")
}

/// Seconds for a message: "10", "0.5", "2.25" (as the user wrote them).
fn seconds(d: Duration) -> String {
    format!("{}", (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Wait until `deadline` for the link of port `name`; returns the line that
/// says it is up, with speed and duplex (and how long it took, when it was
/// down at first), for the app to print after its own first line. A link
/// down at first is said at once (the wait may be long). A link still down
/// at the deadline, or a device that no longer answers, is an error naming
/// the port. `timeout` is the whole wait, for the message.
pub fn await_link<R: RegisterAccess>(
    nic: &Nic<R>,
    name: &str,
    deadline: Instant,
    timeout: Duration,
) -> AppResult<String> {
    let t0 = Instant::now();
    let first = nic.link().map_err(|e| format!("port {name}: {e}"))?;
    let status = if first.up {
        first
    } else {
        println!(
            "port {name}: link down, waiting up to {} s for it",
            seconds(timeout)
        );
        match nic.wait_link(deadline.saturating_duration_since(Instant::now())) {
            Ok(s) => s,
            Err(NicError::LinkDown { .. }) => {
                return Err(format!(
                    "port {name}: no link after {} s (cable, peer, or --link-timeout)",
                    seconds(timeout)
                )
                .into())
            }
            Err(e) => return Err(format!("port {name}: {e}").into()),
        }
    };
    let waited = if first.up {
        String::new()
    } else {
        format!(" (after {:.1} s)", t0.elapsed().as_secs_f64())
    };
    Ok(format!(
        "port {name}: link up, {}{waited}",
        describe(&status)
    ))
}

/// What a run notices of its port's link: the workers that read the link
/// state report changes here (the first to see one records it, so several
/// threads on one port give one event), and the program's main loop prints
/// them ([`LinkWatch::take_events`]).
#[derive(Debug, Default)]
pub struct LinkWatch {
    down: AtomicBool,
    events: Mutex<Vec<LinkEvent>>,
}

/// A change of the link seen during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkEvent {
    /// Up (true) or down.
    pub up: bool,
    /// When it was seen.
    pub at: Instant,
}

impl LinkWatch {
    /// Whether the link was last seen down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Record the link seen `up` or down now; an event when it changed.
    pub fn seen(&self, up: bool) {
        if self.down.swap(!up, Ordering::Relaxed) == up {
            let e = LinkEvent {
                up,
                at: Instant::now(),
            };
            self.events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e);
        }
    }

    /// The events since the last call, oldest first.
    pub fn take_events(&self) -> Vec<LinkEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Prints link events as lines, with times from the start of the run:
/// `port NAME: link down at 3.2 s, sending paused` and `port NAME: link up
/// again after 1.1 s, resuming`.
#[derive(Debug)]
pub struct LinkReporter {
    name: String,
    started: Instant,
    down_at: Option<Instant>,
    /// The port sends (the lines say sending pauses and resumes).
    sends: bool,
}

impl LinkReporter {
    /// A reporter for port `name` of a sender, for a run that began at
    /// `started`.
    pub fn new(name: &str, started: Instant) -> Self {
        LinkReporter {
            name: name.to_string(),
            started,
            down_at: None,
            sends: true,
        }
    }

    /// A reporter for port `name` of an app that receives or forwards:
    /// `port NAME: link down at 3.2 s` and `port NAME: link up again after
    /// 1.1 s` (nothing to pause: the frames just stop coming).
    pub fn receiving(name: &str, started: Instant) -> Self {
        LinkReporter {
            sends: false,
            ..LinkReporter::new(name, started)
        }
    }

    /// The line for `e`.
    pub fn line(&mut self, e: &LinkEvent) -> String {
        if e.up {
            let after = self
                .down_at
                .take()
                .map_or(0.0, |d| e.at.saturating_duration_since(d).as_secs_f64());
            format!(
                "port {}: link up again after {after:.1} s{}",
                self.name,
                if self.sends { ", resuming" } else { "" }
            )
        } else {
            self.down_at = Some(e.at);
            format!(
                "port {}: link down at {:.1} s{}",
                self.name,
                e.at.saturating_duration_since(self.started).as_secs_f64(),
                if self.sends { ", sending paused" } else { "" }
            )
        }
    }

    /// Print the lines of the events `watch` has gathered.
    pub fn print(&mut self, watch: &LinkWatch) {
        for e in watch.take_events() {
            println!("{}", self.line(&e));
        }
    }
}

/// How often [`IdleLinkCheck`] reads the ports' link.
pub const IDLE_CHECK: Duration = Duration::from_millis(100);

/// The link of the ports of an app that receives or forwards (fwd, pcap,
/// blkrecv on a NIC), read from its idle path at most every
/// [`IDLE_CHECK`] (one register read per port, never per frame), and
/// its changes printed as they are seen ([`LinkReporter::receiving`]).
#[derive(Debug)]
pub struct IdleLinkCheck {
    ports: Vec<(LinkWatch, LinkReporter)>,
    next: Instant,
}

impl IdleLinkCheck {
    /// Ports `names` (their links up, as the start waited for), in a run
    /// that began at `started`.
    pub fn new(names: &[String], started: Instant) -> Self {
        IdleLinkCheck {
            ports: names
                .iter()
                .map(|n| (LinkWatch::default(), LinkReporter::receiving(n, started)))
                .collect(),
            next: Instant::now() + IDLE_CHECK,
        }
    }

    /// Read the links of `nics` (in the order of the names) if
    /// [`IDLE_CHECK`] has passed, and print what changed. A device that no
    /// longer answers is left to the app's counters, which end the run
    /// naming the port.
    pub fn poll<R: RegisterAccess>(&mut self, nics: &[&Nic<R>]) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + IDLE_CHECK;
        for ((watch, reporter), nic) in self.ports.iter_mut().zip(nics) {
            if let Ok(s) = nic.link() {
                watch.seen(s.up);
            }
            reporter.print(watch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_and_duplex_read_as_an_operator_writes_them() {
        let s = |speed_mbps, full_duplex| LinkStatus {
            up: true,
            speed_mbps,
            full_duplex,
        };
        assert_eq!(describe(&s(10_000, true)), "10 Gb/s full duplex");
        assert_eq!(describe(&s(1000, true)), "1 Gb/s full duplex");
        assert_eq!(describe(&s(2500, true)), "2.5 Gb/s full duplex");
        assert_eq!(describe(&s(100, false)), "100 Mb/s half duplex");
        assert_eq!(describe(&s(0, true)), "unknown speed full duplex");
        assert_eq!(seconds(Duration::from_secs(10)), "10");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
    }

    #[test]
    fn a_change_is_one_event_however_many_threads_see_it() {
        let w = LinkWatch::default();
        w.seen(true);
        assert!(w.take_events().is_empty(), "up at start is no event");
        w.seen(false);
        w.seen(false);
        assert!(w.is_down());
        w.seen(true);
        w.seen(true);
        let ev = w.take_events();
        assert_eq!(ev.iter().map(|e| e.up).collect::<Vec<_>>(), [false, true]);
        assert!(w.take_events().is_empty());
        let mut r = LinkReporter::new("emu:igb", ev[0].at - Duration::from_millis(3200));
        assert_eq!(
            r.line(&ev[0]),
            "port emu:igb: link down at 3.2 s, sending paused"
        );
        let up = LinkEvent {
            up: true,
            at: ev[0].at + Duration::from_millis(1100),
        };
        assert_eq!(
            r.line(&up),
            "port emu:igb: link up again after 1.1 s, resuming"
        );
        let mut r = LinkReporter::receiving("emu:igb", ev[0].at - Duration::from_millis(3200));
        assert_eq!(r.line(&ev[0]), "port emu:igb: link down at 3.2 s");
        assert_eq!(r.line(&up), "port emu:igb: link up again after 1.1 s");
    }
}
