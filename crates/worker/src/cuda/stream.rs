//! The safe layer's [`Stream`] and [`Event`]: cudarc's stream and event
//! with every driver call checked into a [`CudaError`] that names it.
//!
//! Streams are made with a priority (the backend's compute stream gets the
//! lowest, its communication streams the highest); events with
//! `CU_EVENT_DEFAULT`, so they time. The raw `CUstream` is handed out only
//! inside `cuda/`, to the layers that enqueue library work on it
//! (`cuda/launch.rs`).

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::safe::{CudaContext, CudaEvent, CudaStream};
use cudarc::driver::{result as cu, sys};

use super::error::{drv, CudaError};

/// The primary context of device `ordinal`, with cudarc's automatic event
/// tracking off: it would make streams wait on each other behind the
/// schedule's back and falsify the overlap measurement. The users of this
/// context order every cross-stream use with explicit events (the
/// schedule's waits) and synchronise before freeing.
pub fn open_context(ordinal: usize) -> Result<Arc<CudaContext>, cu::DriverError> {
    let ctx = CudaContext::new(ordinal)?;
    // SAFETY: the context was made just above: no stream, event or
    // allocation of it exists yet whose tracking could be left half-done.
    unsafe { ctx.disable_event_tracking() };
    Ok(ctx)
}

/// The context's stream priorities, `(least, greatest)`
/// (`cuCtxGetStreamPriorityRange`; greater priority is a smaller number).
pub fn priority_range() -> Result<(i32, i32), CudaError> {
    drv(
        "cuCtxGetStreamPriorityRange",
        cu::stream::get_priority_range(),
    )
}

/// A stream of one context.
#[derive(Debug, Clone)]
pub struct Stream {
    inner: Arc<CudaStream>,
}

impl Stream {
    /// A new non-blocking stream of `ctx` with `priority`
    /// ([`priority_range`]).
    pub fn new(ctx: &Arc<CudaContext>, priority: i32) -> Result<Stream, CudaError> {
        let inner = drv("cuStreamCreate", ctx.new_stream_with_priority(priority))?;
        Ok(Stream { inner })
    }

    /// A new non-blocking stream of `ctx` with the default priority.
    pub fn new_default(ctx: &Arc<CudaContext>) -> Result<Stream, CudaError> {
        let inner = drv("cuStreamCreate", ctx.new_stream())?;
        Ok(Stream { inner })
    }

    /// Blocks until everything queued on the stream has run.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        drv("cuStreamSynchronize", self.inner.synchronize())
    }

    /// Makes the stream wait (without blocking the host) for `event`.
    pub fn wait(&self, event: &Event) -> Result<(), CudaError> {
        drv("cuStreamWaitEvent", self.inner.wait(&event.inner))
    }

    /// The stream's context.
    pub fn context(&self) -> &Arc<CudaContext> {
        self.inner.context()
    }

    /// The `CUstream`, for the calls of the lower layers that enqueue on it.
    pub(super) fn raw(&self) -> *mut c_void {
        self.inner.cu_stream() as _
    }
}

/// A timing event.
#[derive(Debug)]
pub struct Event {
    inner: CudaEvent,
}

impl Event {
    /// A new event of `ctx` (`CU_EVENT_DEFAULT`: timing on).
    pub fn new(ctx: &Arc<CudaContext>) -> Result<Event, CudaError> {
        let inner = drv(
            "cuEventCreate",
            ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT)),
        )?;
        Ok(Event { inner })
    }

    /// A new event of `ctx` without timing (`CU_EVENT_DISABLE_TIMING`),
    /// for waiting only.
    pub fn new_untimed(ctx: &Arc<CudaContext>) -> Result<Event, CudaError> {
        let inner = drv(
            "cuEventCreate",
            ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)),
        )?;
        Ok(Event { inner })
    }

    /// Enqueues the event on `stream`.
    pub fn record(&self, stream: &Stream) -> Result<(), CudaError> {
        drv("cuEventRecord", self.inner.record(&stream.inner))
    }

    /// Whether everything queued before the event's record has run
    /// (`cuEventQuery`; never blocks).
    pub fn is_complete(&self) -> Result<bool, CudaError> {
        drv("cuEventQuery", self.inner.try_is_complete())
    }

    /// Milliseconds from this event to `end`, both completed.
    pub fn elapsed_ms(&self, end: &Event) -> Result<f32, CudaError> {
        drv("cuEventElapsedTime", self.inner.elapsed_ms(&end.inner))
    }
}
