//! Metrics upkeep without a scrape. A test binary of its own: it counts the process's live
//! heap bytes (its own global allocator), and the recorder is process-wide.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use support::gateway::{Gateway, RULES};
use support::keys::SigningKey;
use support::mock::MockOutseta;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only the byte count is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The exporter keeps every histogram sample until upkeep folds it into its buckets; the
/// gateway runs that upkeep itself, so a gateway nobody scrapes does not keep a sample per
/// request. 200k samples (what one busy second records) are held, then let go within a few
/// upkeep periods, with no scrape of `/metrics` (which would do the upkeep itself).
#[tokio::test]
async fn histogram_samples_are_let_go_without_a_scrape() {
    let key = SigningKey::generate("k1");
    let mock = MockOutseta::start(&[&key]).await;
    let _gw = Gateway::start(&mock, RULES).await;
    let every = outseta_gateway::telemetry::metrics::UPKEEP_EVERY;
    tokio::time::sleep(every + Duration::from_millis(200)).await;

    let base = live();
    let duration = metrics::histogram!("gateway_upkeep_probe_seconds");
    for _ in 0..200_000 {
        duration.record(0.001);
    }
    let held = live() - base;
    assert!(
        held > 1 << 20,
        "200k samples should hold > 1 MiB, held {held} B"
    );

    let limit = Instant::now() + every * 3;
    while live() - base > held / 4 {
        assert!(
            Instant::now() < limit,
            "samples still held after 3 upkeep periods: {} B of {held} B",
            live() - base
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
