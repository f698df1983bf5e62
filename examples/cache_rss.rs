//! Resident memory of the response cache with many entries.
//!
//! Fills the store with `N` (default 100 000) distinct entries shaped like Outseta answers
//! (~1 KiB JSON body, the usual response headers) and prints VmRSS before and after, next to
//! the weight the store accounts for them. Linux only (reads `/proc/self/status`).
//!
//! Run: `cargo run --release --example cache_rss [N]`

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use outseta_gateway::cache::ResponseCache;
use outseta_gateway::cache::entry::Entry;
use outseta_gateway::cache::key::CacheKey;

/// The gateway binary's allocator, so the figure is the one a deployment sees.
#[global_allocator]
static GLOBAL: outseta_gateway::alloc::Mimalloc = outseta_gateway::alloc::Mimalloc;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        header::DATE,
        HeaderValue::from_static("Wed, 26 Nov 2026 21:43:00 GMT"),
    );
    h.insert(
        header::SERVER,
        HeaderValue::from_static("Microsoft-IIS/10.0"),
    );
    h.insert("x-powered-by", HeaderValue::from_static("ASP.NET"));
    h
}

fn body(i: usize) -> Bytes {
    // A person record of about 1 KiB, distinct per entry.
    let mut s = format!(
        r#"{{"Uid":"P{i:07}","Email":"user{i}@example.com","FirstName":"First","LastName":"Last","Account":{{"Uid":"A{i:07}"}},"#
    );
    while s.len() < 1000 {
        s.push_str(r#""Field":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","#);
    }
    s.push_str(r#""_objectType":"Person"}"#);
    // Exactly sized, as `fetch::settle` copies what it stores.
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // As the binary: 4 KiB pages (`alloc::small_pages`).
    outseta_gateway::alloc::small_pages();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let cache = Arc::new(ResponseCache::new(1 << 30));
    let store = cache.store();
    let h = headers();
    let sample_key = format!("/api/v1/crm/people/P{:07}", 0);
    let sample = Entry::new(
        StatusCode::OK,
        &h,
        body(0),
        Duration::ZERO,
        Duration::ZERO,
        0,
    );
    let per_entry_weight = sample.weight(sample_key.len());
    let payload = sample_key.len() + sample.body.len();
    drop(sample);

    store.run_pending_tasks().await;
    let before = rss_kib();
    for i in 0..n {
        let key = format!("/api/v1/crm/people/P{i:07}");
        // As `fetch::settle` stores them: compacted headers, an exactly-sized body.
        let e = Arc::new(Entry::new(
            StatusCode::OK,
            &h,
            body(i),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
            store.next_id(),
        ));
        if store
            .insert(CacheKey::new(&key), e, store.seq())
            .await
            .is_err()
        {
            eprintln!("entry {i} refused");
        }
    }
    store.run_pending_tasks().await;
    let after = rss_kib();
    let entries = store.entry_count();
    let weighted = store.weighted_size();
    let delta = after.saturating_sub(before) * 1024;
    println!("entries:               {entries}");
    println!("key + body per entry:  {payload} B");
    println!("weight per entry:      {per_entry_weight} B (key + headers + body + overhead)");
    println!(
        "weighted size:         {:.1} MiB",
        weighted as f64 / 1048576.0
    );
    println!("VmRSS before:          {:.1} MiB", before as f64 / 1024.0);
    println!("VmRSS after:           {:.1} MiB", after as f64 / 1024.0);
    println!("VmRSS delta:           {:.1} MiB", delta as f64 / 1048576.0);
    if let Some(per) = delta.checked_div(entries) {
        println!("RSS per entry:         {per} B");
        println!(
            "RSS / weighted size:   {:.2}",
            delta as f64 / weighted.max(1) as f64
        );
    }
}
