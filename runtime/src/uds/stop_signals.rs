//! How a server learns it must stop: SIGTERM and SIGINT, blocked in its thread and read
//! from a signalfd the server owns, never through tokio's process-wide signal state,
//! which a forked process shares with its relatives (D-F8).

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;

use crate::error::{Error, Result};

/// The signals that stop a server.
pub(crate) fn stop_signal_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Blocks the [`stop_signal_set`] in the calling thread; returns the previous mask.
pub(crate) fn block_stop_signals() -> Result<SigSet> {
    stop_signal_set()
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| Error::os("blocking SIGTERM and SIGINT", e))
}

/// SIGTERM and SIGINT blocked in this thread and readable from a signalfd owned by this
/// process. On drop, the signals this value blocked (and only those) are drained from the
/// signalfd and the thread's previous mask comes back, so a stop signal already served is
/// not delivered a second time.
pub(crate) struct StopSignals {
    pub(crate) fd: SignalFd,
    previous: SigSet,
}

impl StopSignals {
    pub(crate) fn block() -> Result<Self> {
        let previous = block_stop_signals()?;
        let fd = SignalFd::with_flags(&stop_signal_set(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC);
        match fd {
            Ok(fd) => Ok(StopSignals { fd, previous }),
            Err(e) => {
                let _ = previous.thread_set_mask();
                Err(Error::os("creating a signalfd for SIGTERM and SIGINT", e))
            }
        }
    }

    /// Resolves once SIGTERM or SIGINT has been read (or the signalfd cannot be watched
    /// any more, which also stops the server rather than leaving it deaf).
    pub(crate) async fn requested(&self, watched: &AsyncFd<std::os::fd::RawFd>) {
        loop {
            let Ok(mut guard) = watched.readable().await else {
                return;
            };
            match self.fd.read_signal() {
                Ok(Some(_)) => return,
                Ok(None) | Err(nix::errno::Errno::EINTR) => guard.clear_ready(),
                Err(_) => return,
            }
        }
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        let mut newly = SigSet::empty();
        for signal in stop_signal_set().iter() {
            if !self.previous.contains(signal) {
                newly.add(signal);
            }
        }
        if newly.iter().next().is_some() && self.fd.set_mask(&newly).is_ok() {
            while let Ok(Some(_)) = self.fd.read_signal() {}
        }
        let _ = self.previous.thread_set_mask();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signals to this thread only (`raise`), so the rest of the test binary is untouched.
    #[test]
    fn stop_signals_are_read_from_the_signalfd_and_the_mask_comes_back() {
        let before = SigSet::thread_get_mask().unwrap();
        assert!(!before.contains(Signal::SIGTERM) && !before.contains(Signal::SIGINT));
        let stop = StopSignals::block().unwrap();
        let during = SigSet::thread_get_mask().unwrap();
        assert!(during.contains(Signal::SIGTERM) && during.contains(Signal::SIGINT));
        nix::sys::signal::raise(Signal::SIGINT).unwrap();
        let read = stop.fd.read_signal().unwrap().expect("the SIGINT is pending");
        assert_eq!(read.ssi_signo, Signal::SIGINT as u32);
        assert!(stop.fd.read_signal().unwrap().is_none());
        // Left unread: dropping drains it, so unblocking does not deliver it (which would
        // end this test binary).
        nix::sys::signal::raise(Signal::SIGTERM).unwrap();
        drop(stop);
        assert_eq!(SigSet::thread_get_mask().unwrap(), before);
    }
}
