//! CSV import: line-numbered bad rows, fatal errors that keep nothing, bounded memory.

mod common;

use cartero_campaign::import::*;
use cartero_campaign::model::ListId;
use cartero_campaign::store::{ImportTarget, Store, StoreError};
use cartero_clock::ManualClock;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

on_both_backends!(
    quoted_fields_and_newlines_keep_their_line_numbers,
    ragged_rows_and_empty_emails_are_reported_not_dropped,
    invalid_utf8_is_fatal_names_the_line_and_keeps_nothing,
    a_one_gigabyte_line_is_refused_without_reading_it,
    appending_to_an_existing_list_keeps_both_imports,
    header_problems_are_fatal,
    losing_a_race_for_the_list_name_keeps_nothing,
);

fn clock() -> ManualClock {
    ManualClock::new(1_700_000_000_000)
}

async fn import(
    store: &Store,
    csv: &[u8],
    list: &str,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut ignore = |_| {};
    import_csv(
        store,
        csv,
        ImportTarget::NewList(list.into()),
        options,
        &clock(),
        &mut ignore,
    )
    .await
}

async fn emails(store: &Store, list: ListId) -> Vec<String> {
    let page = store.recipients_page(list, None, 10_000).await.unwrap();
    page.into_iter().map(|r| r.email).collect()
}

async fn quoted_fields_and_newlines_keep_their_line_numbers(store: Store) {
    let csv = "\u{FEFF}First Name,EMail,note\n\
               \"Doe, Jane\",jane@example.org,\"two\nlines\"\n\
               Bob,  bob@example.org ,\"say \"\"hi\"\"\"\n\
               Eve,,missing\n";
    let report = import(&store, csv.as_bytes(), "quoted", &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (report.rows_read, report.imported, report.bad_rows),
        (3, 2, 1)
    );
    // The quoted newline is line 3: Eve's row starts on line 5.
    assert_eq!(
        report.bad,
        vec![BadRow {
            line: 5,
            problem: RowProblem::EmptyEmail
        }]
    );
    let people = store.recipients_page(report.list, None, 10).await.unwrap();
    assert_eq!(people[0].email, "jane@example.org");
    assert_eq!(people[0].attributes["First Name"], "Doe, Jane");
    assert_eq!(people[0].attributes["note"], "two\nlines");
    assert_eq!(people[1].email, "bob@example.org");
    assert_eq!(people[1].attributes["note"], "say \"hi\"");
    assert!(people[0].attributes.get("EMail").is_none());
}

async fn ragged_rows_and_empty_emails_are_reported_not_dropped(store: Store) {
    let mut csv = String::from("email,name\n");
    for i in 0..30 {
        match i % 10 {
            3 => csv.push_str("short@example.org\n"),
            7 => csv.push_str(&format!("long{i}@example.org,n,extra\n")),
            9 => csv.push_str("   ,nobody\n"),
            _ => csv.push_str(&format!("p{i}@example.org,n{i}\n")),
        }
    }
    let options = ImportOptions {
        max_reported: 4,
        batch_rows: 7,
        ..ImportOptions::default()
    };
    let mut seen = Vec::new();
    let mut progress = |n| seen.push(n);
    let report = import_csv(
        &store,
        csv.as_bytes(),
        ImportTarget::NewList("ragged".into()),
        &options,
        &clock(),
        &mut progress,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.rows_read, report.imported, report.bad_rows),
        (30, 21, 9)
    );
    assert_eq!(
        report.bad,
        vec![
            BadRow {
                line: 5,
                problem: RowProblem::Ragged {
                    expected: 2,
                    found: 1
                }
            },
            BadRow {
                line: 9,
                problem: RowProblem::Ragged {
                    expected: 2,
                    found: 3
                }
            },
            BadRow {
                line: 11,
                problem: RowProblem::EmptyEmail
            },
            BadRow {
                line: 15,
                problem: RowProblem::Ragged {
                    expected: 2,
                    found: 1
                }
            },
        ]
    );
    assert_eq!(store.count_recipients(report.list).await.unwrap(), 21);
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]) && seen.len() >= 3,
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&30));
}

async fn invalid_utf8_is_fatal_names_the_line_and_keeps_nothing(store: Store) {
    let mut csv = b"email,name\n".to_vec();
    for i in 0..2500 {
        csv.extend_from_slice(format!("p{i}@example.org,n{i}\n").as_bytes());
    }
    // Latin-1 "é" on line 2502, after several committed batches.
    csv.extend_from_slice(b"rene@example.org,Ren\xe9\n");
    let options = ImportOptions {
        batch_rows: 500,
        ..ImportOptions::default()
    };
    let err = import(&store, &csv, "latin1", &options).await.unwrap_err();
    assert!(matches!(err, ImportError::Encoding { line: 2502 }), "{err}");
    assert!(err.to_string().contains("line 2502"));
    assert_eq!(store.list_by_name("latin1").await.unwrap(), None);
    // The staging rows are gone too: a clean import of the same name works and holds only its
    // own rows.
    let ok = import(&store, b"email\nonly@example.org\n", "latin1", &options)
        .await
        .unwrap();
    assert_eq!(emails(&store, ok.list).await, vec!["only@example.org"]);
}

/// A source of `len` bytes of `a` that never exists in memory, counting what was read.
struct Endless {
    left: u64,
    read: Arc<AtomicU64>,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].fill(b'a');
        self.left -= n as u64;
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

async fn a_one_gigabyte_line_is_refused_without_reading_it(store: Store) {
    let read = Arc::new(AtomicU64::new(0));
    let input = std::io::Cursor::new(b"email,name\nok@example.org,x\nbig@example.org,".to_vec())
        .chain(Endless {
            left: 1 << 30,
            read: read.clone(),
        });
    let mut ignore = |_| {};
    let options = ImportOptions::default();
    let err = import_csv(
        &store,
        input,
        ImportTarget::NewList("huge".into()),
        &options,
        &clock(),
        &mut ignore,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::LineTooLong {
                line: 3,
                limit: 65536
            }
        ),
        "{err}"
    );
    // Bounded by the limit and the parser's buffer, not by the line.
    assert!(
        read.load(Ordering::SeqCst) <= 4 * 65536,
        "read {}",
        read.load(Ordering::SeqCst)
    );
    assert_eq!(store.list_by_name("huge").await.unwrap(), None);
    // Just over the limit but short enough to be parsed whole: refused as well.
    let mut csv = b"email,name\na@example.org,".to_vec();
    csv.extend(std::iter::repeat_n(b'x', 70_000));
    csv.push(b'\n');
    let err = import(&store, &csv, "huge", &options).await.unwrap_err();
    assert!(
        matches!(err, ImportError::LineTooLong { line: 2, .. }),
        "{err}"
    );
}

async fn appending_to_an_existing_list_keeps_both_imports(store: Store) {
    let first = import(
        &store,
        b"email\na@example.org\n",
        "grow",
        &ImportOptions::default(),
    )
    .await
    .unwrap();
    let mut ignore = |_| {};
    let second = import_csv(
        &store,
        &b"email\nb@example.org\n"[..],
        ImportTarget::Existing(first.list),
        &ImportOptions::default(),
        &clock(),
        &mut ignore,
    )
    .await
    .unwrap();
    assert_eq!(second.list, first.list);
    assert_eq!(
        emails(&store, first.list).await,
        vec!["a@example.org", "b@example.org"]
    );
    let again = import(
        &store,
        b"email\nc@example.org\n",
        "grow",
        &ImportOptions::default(),
    )
    .await;
    assert!(
        matches!(again, Err(ImportError::Store(_))),
        "the name is taken"
    );
}

async fn header_problems_are_fatal(store: Store) {
    let opts = ImportOptions::default();
    let cases: [(&[u8], &str); 4] = [
        (b"", "empty"),
        (b"mail,name\nx@example.org,x\n", "no \"email\" column"),
        (b"email,name,Name\n", "twice"),
        (b"email,,name\n", "unnamed column (column 2)"),
    ];
    for (csv, want) in cases {
        let err = import(&store, csv, "bad-header", &opts).await.unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    let custom = ImportOptions {
        email_column: "Mail".into(),
        ..ImportOptions::default()
    };
    let ok = import(&store, b"MAIL,name\nx@example.org,x\n", "custom", &custom)
        .await
        .unwrap();
    assert_eq!(ok.imported, 1);
}

async fn losing_a_race_for_the_list_name_keeps_nothing(store: Store) {
    let csv = |tag: &str| {
        let mut s = String::from("email\n");
        for i in 0..400 {
            s.push_str(&format!("{tag}{i}@example.org\n"));
        }
        s
    };
    let (a, b) = (csv("a"), csv("b"));
    let options = ImportOptions {
        batch_rows: 50,
        ..ImportOptions::default()
    };
    // Both start while the name is free; batches interleave; the second to commit loses.
    let (ra, rb) = tokio::join!(
        import(&store, a.as_bytes(), "contested", &options),
        import(&store, b.as_bytes(), "contested", &options)
    );
    let (won, lost) = match (ra, rb) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("one import must win: {other:?}"),
    };
    assert!(
        matches!(lost, ImportError::Store(StoreError::ListExists(_))),
        "{lost}"
    );
    assert_eq!(store.count_recipients(won.list).await.unwrap(), 400);
    assert_eq!(
        store.discard_stale_imports(u64::MAX).await.unwrap(),
        0,
        "no staging left"
    );
}
