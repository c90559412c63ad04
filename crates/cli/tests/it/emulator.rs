//! `orgsync emulator` as a process: its flags reach the emulator, bad values are refused.

use futures::TryStreamExt;
use tokio::io::AsyncBufReadExt as _;

use crate::ORGSYNC;

#[tokio::test]
async fn photo_share_out_of_range_is_a_config_error() {
    let out = ORGSYNC
        .command()
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--photo-share",
            "1.5",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--photo-share"), "{stderr}");
}

#[tokio::test]
async fn photo_share_gives_generated_users_directory_photos() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = ORGSYNC
        .command()
        .args(["emulator", "--listen", "127.0.0.1:0", "--users", "4"])
        .args(["--photo-share", "1", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("the emulator starts")
        .unwrap()
        .unwrap();
    let base = first
        .strip_prefix("orgsync emulator listening on ")
        .expect("machine-readable first line")
        .trim()
        .to_string();
    let key = std::fs::read_to_string(dir.path().join("service-account.json")).unwrap();
    let config = orgsync_jobs::context::emulator_config(&base, key, "admin@example.com");
    let client = orgsync_jobs::context::service_account_client(&config).unwrap();
    let users: Vec<orgsync_wire::directory::User> = client
        .directory()
        .users_list(Default::default())
        .try_collect()
        .await
        .unwrap();
    assert!(users.len() >= 4);
    // Generated people; the admin account is not part of the generated org.
    for u in users
        .iter()
        .filter(|u| !u.primary_email.as_deref().unwrap().starts_with("admin@"))
    {
        let id = u.id.as_deref().unwrap();
        let photo = client.directory().users_photos_get(id).await.unwrap();
        assert!(photo.is_some(), "{id} has no photo with --photo-share 1");
        assert!(u.thumbnail_photo_etag.is_some());
    }
    child.kill().await.unwrap();
}

/// The binary turns transparent huge pages off for its process at start-up (its
/// `main.rs` says why: 2 MiB pages holding a few live objects kept ~50 MB resident in a
/// 10,000-person contacts run). The kernel reports the switch in `/proc/PID/status`.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_process_runs_without_transparent_huge_pages() {
    let mut child = ORGSYNC
        .command()
        .args(["emulator", "--listen", "127.0.0.1:0", "--users", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("the emulator starts")
        .unwrap()
        .expect("a first line");
    let pid = child.id().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    child.kill().await.unwrap();
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .expect("the kernel reports THP_enabled (Linux 5.0 and later)");
    assert_eq!(thp.trim(), "0", "{status}");
}
