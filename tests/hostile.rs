//! `easyncd` against each of the lab's hostile faults (`tests/common/hostile.rs` runs one):
//! while the fault lasts the daemon keeps running, its memory grows by less than 4 MiB over
//! what the first sync took, and it sends a bounded number of requests; once the fault is
//! switched off its store comes back to exactly what the lab holds, with no temporary file
//! left and no descriptor leaked. Each test prints its figures. The targets (peak RSS under
//! 16 MiB, CPU under 5 % while the fault lasts) are for the release build and checked by
//! `cargo bench --bench hostile`, which runs the same cases.

#![cfg(feature = "lab")]

mod common;

use common::hostile::{self, Outcome};

/// Growth of the peak RSS over the one before the fault beyond which the reaction is not
/// bounded (the largest seen: 2.2 MiB, the 10,000 folder changes read before the refusal).
const PEAK_GROWTH_LIMIT_KIB: u64 = 4 * 1024;
/// Requests while the fault lasts (6 s) beyond which the daemon is busy-looping. Before the
/// guards a Ping reporting phantom changes drew 1,925 and an endless MoreAvailable 2,126; the
/// decaying pause after phantom changes still allows about 50 (a Ping and a Sync per folder
/// per round).
const MAX_REQUESTS: u64 = 100;

fn check(name: &str) -> Outcome {
    let case = hostile::all_cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    let outcome = hostile::run(&case, env!("CARGO_BIN_EXE_easyncd"));
    eprintln!("{}", outcome.line());
    let log = || outcome.log.clone();
    assert!(outcome.alive, "{name}: easyncd died\n{}", log());
    if outcome.emulated {
        eprintln!("{name}: peak RSS not checked: it is qemu-user's, not easyncd's");
    }
    assert!(
        outcome.emulated || outcome.peak_rss_kib < outcome.peak_before_kib + PEAK_GROWTH_LIMIT_KIB,
        "{name}: peak RSS {} KiB, {} KiB before the fault\n{}",
        outcome.peak_rss_kib,
        outcome.peak_before_kib,
        log()
    );
    assert!(
        outcome.requests <= MAX_REQUESTS,
        "{name}: {} requests while the fault lasted\n{}",
        outcome.requests,
        log()
    );
    assert!(
        outcome.recovered_in.is_some(),
        "{name}: the store never matched the lab again: {:?}\n{}",
        &outcome.differences[..outcome.differences.len().min(20)],
        log()
    );
    assert!(
        outcome.leftover_temp_files.is_empty(),
        "{name}: temporary files left: {:?}",
        outcome.leftover_temp_files
    );
    assert!(
        outcome.fds.1 <= outcome.fds.0 + 2,
        "{name}: descriptors {} at the start, {} at the end",
        outcome.fds.0,
        outcome.fds.1
    );
    outcome
}

macro_rules! hostile_tests {
    ($($test:ident: $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($name);
            }
        )*
        #[test]
        fn every_case_of_the_harness_has_a_test() {
            let tested = [$($name),*];
            for case in hostile::all_cases() {
                assert!(tested.contains(&case.name), "no test for {}", case.name);
            }
        }
    };
}

hostile_tests! {
    a_1_gb_string_is_refused_in_bounded_memory: "huge-string",
    a_1_gb_string_table_is_refused_at_once: "huge-string-table",
    nesting_10000_deep_is_refused: "deep-nesting",
    a_folder_sync_of_100000_folders_is_refused: "many-folders",
    a_sync_of_a_million_adds_beyond_the_window_leaves_nothing_behind: "many-adds",
    a_1_mb_server_id_is_refused: "huge-server-id",
    more_available_without_progress_is_not_followed_forever: "endless-more",
    a_ping_finding_changes_that_are_not_there_does_not_spin: "ping-loop",
    a_sync_key_reset_over_and_over_backs_off: "sync-key-reset",
    a_redirect_cycle_is_bounded: "redirect-cycle",
    a_449_after_every_provision_is_bounded: "retry-with",
    a_connection_reset_mid_body_commits_nothing_twice: "reset",
    a_truncated_body_is_an_error: "truncate",
    a_truncated_gzip_body_is_an_error: "truncated-gzip",
    garbage_is_an_error: "garbage",
    a_captive_portal_is_waited_out: "captive-portal",
    an_empty_body_where_one_is_needed_is_an_error: "empty",
    server_errors_back_off: "server-error",
    a_retry_after_of_a_week_is_capped: "throttle-week",
    a_retry_after_in_the_past_is_not_a_busy_loop: "throttle-past",
    a_peer_that_stops_sending_mid_body_is_timed_out: "stall",
}

/// Every path below `root`, relative, depth first.
fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
            out.push(rel);
        }
    }
    out
}

/// Folder display names and ServerIds a server may send that must never become a path
/// outside the store, a hidden file, or one folder's files mixed into another's: `/`, `..`,
/// `.`, newlines, 4 KB, bidi overrides, names that are equal once sanitized (also ignoring
/// case), ServerIds full of `../`, newlines and `%`; an attachment called `../../etc/passwd`.
/// (NUL cannot travel: WBXML strings end at NUL; `store::names` replaces one anyway.)
#[test]
fn hostile_folder_names_server_ids_and_attachment_names_stay_inside_the_store() {
    use common::daemon::{DaemonSetup, admin, disk_inventory, server_inventory};
    use easync::lab;
    use serde_json::json;

    let config = lab::Config {
        items: 2,
        folder_id_prefix: "../../etc/\n %2e%2E\\x/".into(),
        ..lab::Config::default()
    };
    let handle = lab::Server::start(config).unwrap();
    let admin_addr = handle.admin_addr().unwrap();
    let long = "x".repeat(4096);
    let names = [
        "a/b",
        "..",
        ".",
        "line\nbreak",
        long.as_str(),
        "Coll/ide",
        "Coll_ide",
        "coll_ide",
        "\u{202e}txt.exe",
        "trailing dot.",
    ];
    for (n, name) in names.iter().enumerate() {
        let (status, folder) = admin(
            admin_addr,
            "POST",
            "/folders",
            Some(&json!({"name": name, "type": 14})),
        );
        assert_eq!(status, 200, "{folder}");
        let (status, item) = admin(
            admin_addr,
            "POST",
            "/items",
            Some(&json!({"folder": folder["server_id"], "props": {
                "FileAs": format!("Hostile {n}"), "FirstName": "Hostile",
                "Email1Address": format!("hostile{n}@example.net")}})),
        );
        assert_eq!(status, 200, "{item}");
    }
    let (status, mail_folder) = admin(
        admin_addr,
        "POST",
        "/folders",
        Some(&json!({"name": "../../etc", "type": 12})),
    );
    assert_eq!(status, 200, "{mail_folder}");
    let (status, mail) = admin(
        admin_addr,
        "POST",
        "/items",
        Some(
            &json!({"folder": mail_folder["server_id"], "subject": "hostile attachment",
            "body": "see the attachment",
            "attachments": [{"name": "../../etc/passwd", "data": "root:x:0:0::/root:/bin/sh"}]}),
        ),
    );
    assert_eq!(status, 200, "{mail}");

    let setup = DaemonSetup::new(&handle, "hostilenames", hostile::PUSH);
    let daemon = hostile::Daemon::spawn(&setup, env!("CARGO_BIN_EXE_easyncd"));
    let seen = daemon.notifications(std::time::Duration::from_secs(60), Some("STATUS=synced"));
    assert!(
        seen.iter().any(|m| m.starts_with("STATUS=synced")),
        "{seen:?}\n{}",
        daemon.log()
    );

    // Every item arrived once, in some folder of its class: the folder names differ on disk.
    let flatten = |inventory: common::daemon::Inventory| {
        let mut out = std::collections::BTreeMap::<String, usize>::new();
        for (folder, items) in inventory {
            let class = folder.split('/').next().unwrap_or_default().to_string();
            for (key, n) in items {
                *out.entry(format!("{class}: {key}")).or_default() += n;
            }
        }
        out
    };
    let data = setup.data();
    assert_eq!(
        flatten(server_inventory(&handle)),
        flatten(disk_inventory(&data)),
        "{}",
        daemon.log()
    );

    // One directory per contact folder, each a plain visible name of at most 255 bytes.
    let contact_dirs: Vec<String> = std::fs::read_dir(data.join("contacts"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let on_server = handle.state()["folders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["type"] == 9 || f["type"] == 14)
        .count();
    assert_eq!(contact_dirs.len(), on_server, "{contact_dirs:?}");
    let lowered: std::collections::BTreeSet<String> =
        contact_dirs.iter().map(|d| d.to_lowercase()).collect();
    assert_eq!(lowered.len(), contact_dirs.len(), "{contact_dirs:?}");
    for path in walk(&data) {
        for part in path.split('/') {
            assert!(
                !part.is_empty() && part != "." && part != ".." && part.len() <= 255,
                "{path:?}"
            );
            assert!(
                !part.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{path:?}"
            );
        }
        assert!(!path.ends_with("passwd"), "{path:?}");
    }
    // The hostile ServerIds reached the store, encoded (item files are named after them).
    assert!(
        walk(&data.join("contacts"))
            .iter()
            .any(|p| p.contains("%0A")),
        "{:?}",
        walk(&data.join("contacts"))
    );
    // Nothing was written beside the data directory.
    let mut beside: Vec<String> = std::fs::read_dir(&setup.dir.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        [
            "data",
            "easync.toml",
            "easyncd.log",
            "notify.sock",
            "password"
        ]
    );
    drop(daemon);
    handle.shutdown();
}
