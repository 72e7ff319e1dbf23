//! How a child's result and output reach its parent: memory files (`memfd`) created
//! before the fork, written by the child, read by the parent once the child has exited.
//!
//! A pipe would need the parent to drain it while the child runs (a value over the pipe
//! buffer would block the child's write forever); a memory file takes any size, costs
//! nothing until written, and is read after the exit, so there is no deadlock and no
//! reader thread. The file vanishes with its last descriptor.

use std::ffi::CStr;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;

use nix::sys::memfd::{memfd_create, MFdFlags};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{bounded, WorkerEnd};
use crate::error::{Error, Result};

/// First byte of a report holding the worker's value (JSON follows).
const VALUE: u8 = b'V';
/// First byte of a report holding how the worker failed (a JSON [`WorkerEnd`] follows).
const FAILED: u8 = b'F';

/// One memory file shared by a parent and the child it forks next.
#[derive(Debug)]
pub(crate) struct Channel {
    file: File,
}

impl Channel {
    /// A new, empty memory file; close-on-exec, so a program the child executes does not
    /// inherit it.
    pub(crate) fn new(name: &CStr) -> Result<Channel> {
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)
            .map_err(|e| Error::os("creating a memory file for a child's result (memfd_create)", e))?;
        Ok(Channel { file: File::from(fd) })
    }

    /// In the child: the worker's value. A value that does not serialise is reported as
    /// [`WorkerEnd::BadValue`] instead (and `false` is returned: the child failed).
    pub(crate) fn send_value<T: Serialize>(&self, value: &T) -> bool {
        let mut out = BufWriter::new(&self.file);
        let written = out
            .write_all(&[VALUE])
            .map_err(|e| e.to_string())
            .and_then(|()| serde_json::to_writer(&mut out, value).map_err(|e| e.to_string()))
            .and_then(|()| out.flush().map_err(|e| e.to_string()));
        drop(out);
        match written {
            Ok(()) => true,
            Err(reason) => {
                let _ = self.file.set_len(0);
                let _ = (&self.file).seek(SeekFrom::Start(0));
                self.send_failure(&WorkerEnd::BadValue {
                    message: bounded(format!(
                        "the worker's return value could not be sent: {reason} (return a value that serialises to JSON: no maps with non-string keys, no NaN)"
                    )),
                });
                false
            }
        }
    }

    /// In the child: how it failed.
    pub(crate) fn send_failure(&self, end: &WorkerEnd) {
        let mut out = BufWriter::new(&self.file);
        let _ = out.write_all(&[FAILED]);
        let _ = serde_json::to_writer(&mut out, end);
        let _ = out.flush();
    }

    /// In the parent, after the child ended: its value, or how it failed. A child that
    /// ended without writing anything reads as JSON `null` (right for `()`, `Option`).
    pub(crate) fn receive<T: DeserializeOwned>(&self) -> Report<T> {
        let mut file = &self.file;
        if file.seek(SeekFrom::Start(0)).is_err() {
            return Report::Missing;
        }
        let mut reader = BufReader::new(file);
        let mut kind = [0u8; 1];
        match reader.read(&mut kind) {
            Ok(0) => match serde_json::from_slice::<T>(b"null") {
                Ok(value) => Report::Value(value),
                Err(_) => Report::Missing,
            },
            Ok(_) if kind[0] == VALUE => match serde_json::from_reader::<_, T>(reader) {
                Ok(value) => Report::Value(value),
                Err(e) => Report::Failed(WorkerEnd::BadValue {
                    message: bounded(format!(
                        "the worker's return value could not be read as {}: {e}",
                        std::any::type_name::<T>()
                    )),
                }),
            },
            Ok(_) if kind[0] == FAILED => match serde_json::from_reader(reader) {
                Ok(end) => Report::Failed(end),
                Err(_) => Report::Missing,
            },
            _ => Report::Missing,
        }
    }

    /// In the child: makes this file the process's `fd` (1 for stdout, 2 for stderr).
    pub(crate) fn redirect(&self, fd: i32) -> bool {
        // SAFETY: dup2 on two descriptors this process owns; `fd` is replaced atomically.
        unsafe { libc::dup2(self.file.as_raw_fd(), fd) == fd }
    }

    /// In the parent, after the child ended: everything written to the file.
    pub(crate) fn contents(&self) -> Vec<u8> {
        let mut file = &self.file;
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(0)).is_ok() {
            let _ = file.read_to_end(&mut bytes);
        }
        bytes
    }
}

/// What a child's report says.
#[derive(Debug)]
pub(crate) enum Report<T> {
    /// The worker's value.
    Value(T),
    /// How the worker failed, in its own words.
    Failed(WorkerEnd),
    /// Nothing readable: the exit status is all there is.
    Missing,
}
