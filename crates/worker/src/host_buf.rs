//! Host buffers of the CPU dtypes: what the CPU backend computes in and
//! its MPI groups reduce (a module of its own, so the backend and the
//! groups depend on it and not on each other).
//!
//! **Huge pages.** A buffer of [`HUGE_PAGE_ADVICE_BYTES`] or more has its
//! pages advised huge (`madvise(MADV_HUGEPAGE)`, Linux) before they are
//! first touched, as NumPy does for its arrays: where transparent huge
//! pages are in `madvise` mode (Debian's default) the user's alternatives
//! get 2 MiB pages, and with 4 KiB pages the same MPI all-reduces of the
//! gradient buckets took about 20 % longer on this project's test machine
//! (shared-memory transfers walk and pin every page). The advice changes
//! how the kernel backs the memory, never its contents; where it is
//! refused the buffer is a plain one.

use mfubench_core::config::Dtype;

use crate::backend::BackendError;

/// A host buffer of one of the CPU dtypes.
#[derive(Debug, Clone, PartialEq)]
pub enum HostBuf {
    /// Single precision.
    F32(Vec<f32>),
    /// Double precision.
    F64(Vec<f64>),
}

/// Buffers at least this large get their pages advised huge (NumPy's
/// threshold, 4 MiB).
pub const HUGE_PAGE_ADVICE_BYTES: usize = 4 << 20;

/// The values `f(0)`, …, `f(len - 1)`, in memory whose pages were advised
/// huge before the values were written when it is
/// [`HUGE_PAGE_ADVICE_BYTES`] or more (see the module note).
pub fn vec_with_huge_pages<T>(len: usize, f: impl FnMut(usize) -> T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    advise_huge_pages(v.as_mut_ptr().cast(), len * std::mem::size_of::<T>());
    v.extend((0..len).map(f));
    v
}

/// Advises huge pages for the whole pages inside `[ptr, ptr + bytes)`, an
/// allocation of the caller's not yet touched, when it is large enough.
fn advise_huge_pages(ptr: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    if bytes >= HUGE_PAGE_ADVICE_BYTES {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let start = (ptr as usize).next_multiple_of(page);
        let end = (ptr as usize + bytes) / page * page;
        if end > start {
            // SAFETY: [start, end) is rounded inward to whole pages, so it
            // lies inside the caller's own allocation and covers no other
            // object; MADV_HUGEPAGE only changes how the kernel backs those
            // pages, never their contents or validity, and a refusal
            // (EINVAL where transparent huge pages are off) leaves them as
            // they were.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, bytes);
}

impl HostBuf {
    pub(crate) fn filled(
        dtype: Dtype,
        len: usize,
        mut f: impl FnMut(usize) -> f64,
    ) -> Result<HostBuf, BackendError> {
        match dtype {
            Dtype::F32 => Ok(HostBuf::F32(vec_with_huge_pages(len, |i| f(i) as f32))),
            Dtype::F64 => Ok(HostBuf::F64(vec_with_huge_pages(len, f))),
            other => Err(BackendError::Unavailable(format!(
                "the cpu backend supports f32 and f64, not {other}"
            ))),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostBuf::F32(v) => v.len(),
            HostBuf::F64(v) => v.len(),
        }
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn fill_nan(&mut self) {
        match self {
            HostBuf::F32(v) => v.fill(f32::NAN),
            HostBuf::F64(v) => v.fill(f64::NAN),
        }
    }

    pub(crate) fn get(&self, i: usize) -> f64 {
        match self {
            HostBuf::F32(v) => v[i] as f64,
            HostBuf::F64(v) => v[i],
        }
    }

    pub(crate) fn add(&mut self, i: usize, x: f64) {
        match self {
            HostBuf::F32(v) => v[i] += x as f32,
            HostBuf::F64(v) => v[i] += x,
        }
    }
}
