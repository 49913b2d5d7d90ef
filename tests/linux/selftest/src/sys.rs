//! Thin wrappers over the system calls the checks make. Every error is a `String` that names
//! the call and the errno, ready to be printed in a FAIL line.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// The errno of the last failed call, as "errno N (ENAME: text)".
pub fn errno_text(err: &io::Error) -> String {
    let Some(n) = err.raw_os_error() else { return err.to_string() };
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTCONN => "ENOTCONN",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => "?",
    };
    let text = io::Error::from_raw_os_error(n).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    format!("errno {n} ({name}: {text})")
}

/// "`what`: errno N (...)" for the last failed call.
pub fn last_error(what: &str) -> String {
    format!("{what}: {}", errno_text(&io::Error::last_os_error()))
}

/// Opens a device read-write (close-on-exec).
pub fn open_dev(path: &str) -> Result<File, String> {
    OpenOptions::new().read(true).write(true).open(path).map_err(|e| format!("open({path}): {}", errno_text(&e)))
}

/// `ioctl(fd, request, arg)`; `name` is the request's name for the error message.
/// Returns the ioctl's (non-negative) value.
pub fn ioctl<T>(dev: &File, request: u32, name: &str, arg: &mut T) -> Result<i32, String> {
    // The request is a 32-bit pattern; musl declares it `int`, glibc `unsigned long`.
    // SAFETY: `arg` is a live, exclusively borrowed `#[repr(C)]` value whose layout is the one
    // `request` expects (the request numbers and types are paired in uapi.rs); the kernel reads
    // and writes only within it.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), request as libc::Ioctl, core::ptr::from_mut(arg)) };
    if rc < 0 { Err(last_error(&format!("ioctl({name})"))) } else { Ok(rc) }
}

/// A shared mapping of a device's pages; unmapped when dropped (or by `unmap`, which reports).
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// `mmap(NULL, len, prot, MAP_SHARED, fd, offset)`; `what` names the mapping for errors.
    pub fn new(dev: &File, len: usize, prot: libc::c_int, offset: u64, what: &str) -> Result<Mapping, String> {
        let off = libc::off_t::try_from(offset).map_err(|_| format!("mmap({what}): offset {offset:#x} too large"))?;
        // SAFETY: a fresh mapping chosen by the kernel (NULL hint, no MAP_FIXED): it cannot
        // overlap memory Rust owns.
        let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, libc::MAP_SHARED, dev.as_raw_fd(), off) };
        if p == libc::MAP_FAILED {
            return Err(last_error(&format!("mmap({what}, {len} bytes, offset {offset:#x})")));
        }
        Ok(Mapping { ptr: NonNull::new(p.cast()).expect("mmap returned NULL"), len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The 64-bit word at byte offset `off` (volatile: another mapping may alias the page).
    pub fn read_u64(&self, off: usize) -> u64 {
        assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: in bounds and aligned (checked above) within a live readable mapping.
        unsafe { self.ptr.as_ptr().add(off).cast::<u64>().read_volatile() }
    }

    /// Writes the 64-bit word at byte offset `off` (the mapping must be writable).
    pub fn write_u64(&self, off: usize, v: u64) {
        assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: in bounds and aligned within a live mapping; callers only write mappings
        // they made with PROT_WRITE. The memory is not a Rust object, so aliasing it through
        // another mapping breaks no reference rules.
        unsafe { self.ptr.as_ptr().add(off).cast::<u64>().write_volatile(v) }
    }

    /// munmap, reporting a failure.
    pub fn unmap(self, what: &str) -> Result<(), String> {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: the mapping this value owns, unmapped once (Drop does not run).
        if unsafe { libc::munmap(me.ptr.as_ptr().cast(), me.len) } != 0 {
            return Err(last_error(&format!("munmap({what})")));
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping this value owns, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Waits up to `timeout_ms` for `dev` to be readable. Ok(false) on a timeout.
pub fn poll_in(dev: &File, timeout_ms: i32, what: &str) -> Result<bool, String> {
    let mut pfd = libc::pollfd { fd: dev.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(last_error(&format!("poll({what})")));
        }
        if rc > 0 && pfd.revents & !libc::POLLIN != 0 {
            return Err(format!("poll({what}): revents {:#x}", pfd.revents));
        }
        return Ok(rc > 0);
    }
}

/// read() of whole u32s (the evtchn device's pending ports) into `buf`; returns how many.
pub fn read_u32s(dev: &File, buf: &mut [u32], what: &str) -> Result<usize, String> {
    // SAFETY: writes at most size_of_val(buf) bytes into `buf`.
    let n = unsafe { libc::read(dev.as_raw_fd(), buf.as_mut_ptr().cast(), size_of_val(buf)) };
    if n < 0 {
        return Err(last_error(&format!("read({what})")));
    }
    let n = n as usize;
    if !n.is_multiple_of(4) {
        return Err(format!("read({what}): {n} bytes, not a whole number of u32 ports"));
    }
    Ok(n / 4)
}

/// write() of u32s (ports to unmask on the evtchn device); all must be taken.
pub fn write_u32s(dev: &File, buf: &[u32], what: &str) -> Result<(), String> {
    // SAFETY: reads size_of_val(buf) bytes from `buf`.
    let n = unsafe { libc::write(dev.as_raw_fd(), buf.as_ptr().cast(), size_of_val(buf)) };
    if n < 0 {
        return Err(last_error(&format!("write({what})")));
    }
    if n as usize != size_of_val(buf) {
        return Err(format!("write({what}): {n} of {} bytes taken", size_of_val(buf)));
    }
    Ok(())
}

/// `mount(source, target, fstype, 0, NULL)`.
pub fn mount(source: &str, target: &str, fstype: &str) -> Result<(), String> {
    let c = |s: &str| CString::new(s).expect("no NUL in a mount argument");
    let (src, tgt, fs) = (c(source), c(target), c(fstype));
    // SAFETY: three NUL-terminated strings that outlive the call; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs.as_ptr(), 0, core::ptr::null()) };
    if rc != 0 {
        return Err(last_error(&format!("mount(-t {fstype} {source} {target})")));
    }
    Ok(())
}

/// The system's page size (sysconf(_SC_PAGESIZE)).
pub fn page_size() -> usize {
    // SAFETY: no arguments beyond the name; cannot fail for _SC_PAGESIZE.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}
