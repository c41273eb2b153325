//! Insert throughput: `cargo run --release -p cartero-spool --example spool_bench -- [N] [DIR]`.
//! N messages of 8 KiB from 64 concurrent tasks; prints msg/s and the average batch size.
//! `SPOOL_BENCH_BATCH` sets `max_batch` (default 64, one barrier per 64 as in NOTES.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cartero_spool::{Envelope, Spool, SpoolOptions};

const TASKS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    let tmp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(n, dir))
}

async fn run(n: usize, dir: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let opts = SpoolOptions {
        max_batch: std::env::var("SPOOL_BENCH_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        max_batch_delay: Duration::ZERO,
        ..SpoolOptions::default()
    };
    let (spool, _) = Spool::open(&dir, opts)?;
    let body = Bytes::from(vec![b'x'; 8192]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (spool, body) = (spool.clone(), body.clone());
        let count = n / TASKS + usize::from(t < n % TASKS);
        tasks.push(tokio::spawn(async move {
            for i in 0..count {
                let env = Envelope {
                    sender: "bench@example.com".into(),
                    recipients: vec![format!("r{t}-{i}@example.net")],
                    received_at: 0,
                    expires_at: 0,
                    metadata: serde_json::Map::new(),
                    pool: None,
                    idempotency: Vec::new(),
                };
                spool.insert(&env, body.clone()).await?;
            }
            Ok::<_, cartero_spool::SpoolError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let st = spool.stats();
    println!(
        "{n} msgs of 8 KiB from {TASKS} tasks in {secs:.2}s: {:.0} msg/s, {} barriers ({:.1} msgs/barrier), {} segments, {} MiB",
        n as f64 / secs,
        st.fsync_barriers,
        n as f64 / st.fsync_barriers.max(1) as f64,
        st.segments,
        st.bytes_on_disk >> 20
    );
    spool.close().await?;
    Ok(())
}
