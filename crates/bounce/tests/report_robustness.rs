//! The report parser never panics, hangs or balloons: arbitrary bytes, mutated corpus messages,
//! and hostile MIME (many parts, deep nesting, a 10 MB header line, oversized input).

use cartero_bounce::report::{MAX_BOUNDARY_LINES, MAX_INPUT_BYTES};
use cartero_bounce::{CodeClassifier, ReportError, classify_report, parse_report};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant};

/// Counts live heap bytes per thread so a test can assert the peak its own parse reaches; other
/// tests of this binary run on other threads at the same time and must not inflate it.
struct Counting;

thread_local! {
    // Signed: a thread may free memory another thread allocated. `const` initialisers and
    // `Cell<isize>` (no destructor) keep these accesses allocation-free inside the allocator.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with` so an access during thread teardown is skipped rather than panicking.
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(delta);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// A counting allocator is the only way to measure what a parse allocates; it only wraps `System`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            track(layout.size() as isize);
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Parses and classifies `raw` on the calling thread; returns the parse result, the extra peak
/// heap that thread reached and the time taken.
fn measured(raw: &[u8]) -> (Result<usize, String>, usize, Duration) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let start = Instant::now();
    let out = parse_report(raw)
        .map(|r| classify_report(&r, &CodeClassifier::new()).len())
        .map_err(|e| e.to_string());
    let took = start.elapsed();
    let peak = PEAK.with(Cell::get).saturating_sub(base);
    (out, usize::try_from(peak).unwrap_or(0), took)
}

fn corpus_files() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "eml") {
                out.push(std::fs::read(p).unwrap());
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(r) = parse_report(&raw) {
            let _ = classify_report(&r, &CodeClassifier::new());
        }
    }

    #[test]
    fn header_like_noise_never_panics(lines in proptest::collection::vec(
        "(Content-Type: (multipart/report; report-type=(delivery-status|feedback-report); boundary=b|message/(delivery-status|feedback-report|rfc822)|text/(plain|rfc822-headers))|--b|--b--|Final-Recipient: rfc822; [a-z@.<>]{0,20}|Action: [a-z]{0,8}|Status: [0-9.]{0,8}|Diagnostic-Code: smtp; [0-9 .a-z]{0,30}|X-Cartero-Token: [A-Za-z0-9.]{0,12}| [ -~]{0,40}|)",
        0..60,
    )) {
        let raw = lines.join("\r\n");
        if let Ok(r) = parse_report(raw.as_bytes()) {
            let _ = classify_report(&r, &CodeClassifier::new());
        }
    }

    #[test]
    fn mutated_corpus_messages_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..24),
    ) {
        static FILES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        let files = FILES.get_or_init(corpus_files);
        let mut raw = pick.get(files).clone();
        for (at, byte, op) in edits {
            if raw.is_empty() { break; }
            let i = at.index(raw.len());
            match op {
                0 => raw[i] = byte,
                1 => raw.insert(i, byte),
                2 => { raw.remove(i); }
                _ => raw.truncate(i),
            }
        }
        if let Ok(r) = parse_report(&raw) {
            let _ = classify_report(&r, &CodeClassifier::new());
        }
    }
}

const DSN_HEAD: &str = "From: MAILER-DAEMON@mx.example\r\nTo: b-tok123@bounces.example\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b0\"\r\n\r\n";

#[test]
fn oversized_input_is_refused_without_parsing() {
    let raw = vec![b'a'; MAX_INPUT_BYTES + 1];
    assert!(matches!(
        parse_report(&raw),
        Err(ReportError::TooLarge { .. })
    ));
    assert!(matches!(parse_report(b" \r\n"), Err(ReportError::Empty)));
}

#[test]
fn a_ten_megabyte_header_line_is_bounded_in_time_and_memory() {
    let mut raw = b"From: MAILER-DAEMON@mx.example\r\nX-Junk: ".to_vec();
    raw.resize(MAX_INPUT_BYTES - 200, b'x');
    raw.extend_from_slice(b"\r\nSubject: failure notice\r\n\r\nHi. This is the qmail-send program.\r\n\r\n<a@b.example>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n");
    let (out, peak, took) = measured(&raw);
    assert_eq!(out, Ok(1), "still reads the bounce after the long header");
    assert!(peak < 8 * MAX_INPUT_BYTES, "peak heap {peak}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn many_parts_are_bounded_and_too_many_boundaries_are_refused() {
    let mut raw = DSN_HEAD.to_string();
    for i in 0..(MAX_BOUNDARY_LINES - 10) {
        raw.push_str(&format!(
            "--b0\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    raw.push_str("--b0\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b0--\r\n");
    let (out, peak, took) = measured(raw.as_bytes());
    // Only the first MAX_PARTS parts are examined: the status part at the end is not reached.
    assert!(out.is_ok(), "{out:?}");
    assert!(
        peak < 64 * raw.len(),
        "peak heap {peak} for {} bytes",
        raw.len()
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");

    let mut raw = DSN_HEAD.to_string();
    for _ in 0..=MAX_BOUNDARY_LINES {
        raw.push_str("--b0\r\n\r\nx\r\n");
    }
    assert!(matches!(
        parse_report(raw.as_bytes()),
        Err(ReportError::TooComplex { .. })
    ));
}

#[test]
fn deep_nesting_is_bounded() {
    let depth = 900;
    let mut raw = DSN_HEAD.replace("b0", "n0");
    for i in 1..depth {
        raw.push_str(&format!(
            "--n{}\r\nContent-Type: multipart/mixed; boundary=\"n{i}\"\r\n\r\n",
            i - 1
        ));
    }
    raw.push_str("--n899\r\nContent-Type: message/rfc822\r\n\r\n");
    for _ in 0..200 {
        raw.push_str("Content-Type: message/rfc822\r\n\r\n");
    }
    raw.push_str("Subject: inner\r\n\r\nbody\r\n");
    let (out, peak, took) = measured(raw.as_bytes());
    assert!(out.is_ok(), "{out:?}");
    assert!(peak < 64 * 1024 * 1024, "peak heap {peak}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
