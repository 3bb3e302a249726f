//! The identity registry on a simulated disk: a power cut at every step of an install and of
//! the bootstrap, in both failure modes (the operation failed and did not happen; it happened
//! and then failed), dropping everything not yet synced. Like the log's own crash test
//! (`graven-tlog/tests/writer.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use graven_auth::identity::{IdentityRecord, Kind, Role, Status};
use graven_auth::registry::{self, Bootstrap, Registry};
use graven_fs::Fs;
use graven_fs::atomic::{self, Access};
use graven_fs::sim::{FailMode, SimFs};

const DATA: &str = "/data";

fn disk() -> Arc<SimFs> {
    let fs = Arc::new(SimFs::new());
    atomic::create_dir_all(&*fs, Path::new(DATA), Access::Default).unwrap();
    fs
}

/// `n` identities named after `tag`, each with an API key.
fn records(tag: &str, n: u8) -> BTreeMap<String, IdentityRecord> {
    let mut out = BTreeMap::new();
    for i in 0..n {
        let id = format!("svc-{tag}-{i}");
        out.insert(
            id.clone(),
            IdentityRecord {
                id: id.clone(),
                kind: Kind::ServiceAccount,
                owner: format!("team {tag}"),
                description: "x".repeat(usize::from(i) * 50),
                labels: BTreeMap::new(),
                allowed_actions: Vec::new(),
                role: if i == 0 { Role::Admin } else { Role::Writer },
                status: Status::Active,
                created_ms: i64::from(i),
                status_changed_ms: None,
                last_seen_ms: None,
                keys: Vec::new(),
                public_keys: Vec::new(),
                source: None,
            },
        );
        registry::add_key(&mut out, &id, &format!("{:016x}", u64::from(i) + 1), &[i; 32], 5, None);
    }
    out
}

fn open(fs: &Arc<SimFs>) -> Registry {
    Registry::open_with(fs.clone(), Path::new(DATA))
        .unwrap_or_else(|e| panic!("unreadable after a power cut: {e}"))
}

/// For every crash point of an install, in both failure modes: after the power cut the
/// registry reopens (never unreadable) to exactly the old records or exactly the new ones
/// (never a mix), an install that returned `Ok` is always there, and the registry takes the
/// next install (and keeps it through another power cut).
#[test]
fn power_cut_at_every_step_of_an_install_keeps_old_or_new_records() {
    let new = records("new", 5);
    let next = records("next", 2);
    for (old, mode) in [
        (None, FailMode::Before),
        (None, FailMode::After),
        (Some(records("old", 3)), FailMode::Before),
        (Some(records("old", 3)), FailMode::After),
    ] {
        let before = old.clone().unwrap_or_default();
        let mut step = 0;
        let mut outcomes = [0usize; 2];
        loop {
            let fs = disk();
            if let Some(old) = &old {
                open(&fs).install(old.clone()).unwrap();
            }
            let reg = open(&fs);
            fs.fail_after(step, mode);
            let acked = reg.install(new.clone()).is_ok();
            drop(reg);
            fs.crash();
            let after = open(&fs).records();
            if acked {
                assert_eq!(after, new, "{mode:?} step {step}: an acknowledged install was lost");
                assert!(fs.is_private(&Path::new(DATA).join(registry::FILE_NAME)));
            } else {
                assert!(after == before || after == new, "{mode:?} step {step}: a mix: {:?}", after.keys());
            }
            outcomes[usize::from(after == new)] += 1;
            // Whatever the cut left (a temporary file, say), the next install works and lasts.
            open(&fs).install(next.clone()).unwrap();
            fs.crash();
            assert_eq!(open(&fs).records(), next, "{mode:?} step {step}: the follow-up install was lost");
            if acked {
                break;
            }
            step += 1;
            assert!(step < 100, "the install never finished");
        }
        assert_eq!(step, 4, "{mode:?}: write, sync, rename, sync the directory");
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{mode:?}: outcomes {outcomes:?}");
    }
}

/// The bootstrap on a fresh directory installs the registry, then makes `admin.token`. At
/// every crash point the token is absent or complete (never a half-written file that the
/// next start would refuse), a token that is there is a key of the registry the disk kept,
/// and a bootstrap that returned `Ok` left both.
#[test]
fn power_cut_during_the_bootstrap_never_leaves_a_partial_token() {
    let token = Path::new(DATA).join(registry::TOKEN_FILE);
    for mode in [FailMode::Before, FailMode::After] {
        let mut step = 0;
        loop {
            let fs = disk();
            let reg = open(&fs);
            let plan = reg.plan_bootstrap(Path::new(DATA), 1000).unwrap();
            fs.fail_after(step, mode);
            let acked = matches!(reg.apply_bootstrap(plan, Path::new(DATA)), Ok(Bootstrap::Created));
            drop(reg);
            fs.crash();
            let reg = open(&fs);
            match fs.read(&token, 4096) {
                Ok(t) => {
                    let t = String::from_utf8(t).unwrap();
                    assert!(t.ends_with('\n'), "{mode:?} step {step}: partial token {t:?}");
                    assert!(reg.authenticate(t.trim(), 2000).is_ok(), "{mode:?} step {step}");
                    assert!(fs.is_private(&token));
                }
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                    assert!(!acked, "{mode:?} step {step}: an acknowledged bootstrap lost its token");
                }
            }
            if acked {
                break;
            }
            step += 1;
            assert!(step < 100, "the bootstrap never finished");
        }
        assert_eq!(step, 9, "{mode:?}: 4 steps for the registry, 5 for the token");
    }
}
