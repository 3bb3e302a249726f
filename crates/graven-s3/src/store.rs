//! The store itself: the S3 client on its own runtime, and the [`ObjectStore`] operations
//! (see the crate docs for the threads, retries and timeouts).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_config::provider_config::ProviderConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, ChecksumAlgorithm, CreateBucketConfiguration,
    ObjectLockEnabled, ObjectLockMode, VersioningConfiguration,
};
use aws_smithy_http_client::tls;
use futures_util::{StreamExt, TryStreamExt};
use graven_tlog::{Cond, Object, ObjectStore, StoreError};

use crate::address;
use crate::config::S3Config;
use crate::credentials::{self, NamedChain, SourceCell};
use crate::error::S3Error;
use crate::retention::{self, BucketReport, RetentionMode, Versioning};

/// How long connecting to the endpoint may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one operation may take, all its retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most writes [`S3Store::put_immutable_all`] keeps in flight.
pub const MAX_IN_FLIGHT: usize = 32;

/// An [`ObjectStore`] on one S3 bucket and prefix. See the crate documentation.
pub struct S3Store {
    inner: Arc<Inner>,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

struct Inner {
    client: Client,
    cfg: S3Config,
    gets: AtomicU64,
    puts: AtomicU64,
    bucket_ops: AtomicU64,
    lists: AtomicU64,
    /// Where the credentials of the last request came from.
    source: SourceCell,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("location", &self.inner.cfg.url())
            .field("endpoint", &self.inner.cfg.endpoint)
            .finish_non_exhaustive()
    }
}

impl Drop for S3Store {
    fn drop(&mut self) {
        // `Runtime::drop` panics inside an async context; this does not, and does not wait.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A [`Cond`] that owns its ETag, for requests that outlive the caller's borrow.
#[derive(Debug, Clone)]
enum OwnedCond {
    Any,
    IfAbsent,
    IfMatch(String),
}

impl S3Store {
    /// Builds the client and its runtime. Makes no request.
    pub fn connect(cfg: S3Config) -> Result<S3Store, S3Error> {
        address::validate_bucket(&cfg.bucket)?;
        // Keys in the configuration come first, and half a pair is an error, never a reason
        // to fall back to the chain.
        let fixed = match (&cfg.access_key_id, &cfg.secret_access_key) {
            (Some(id), Some(secret)) => {
                Some(Credentials::new(id, secret, cfg.session_token.clone(), None, "graven-config"))
            }
            (None, None) => None,
            _ => return Err(S3Error::HalfKeyPair),
        };
        let source = SourceCell::default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("graven-s3")
            .enable_all()
            .build()
            .map_err(S3Error::Runtime)?;
        let client = {
            let _guard = runtime.enter();
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
                .build_https();
            let mut b = aws_sdk_s3::Config::builder()
                .http_client(http.clone())
                .region(Region::new(cfg.region.clone()))
                .force_path_style(cfg.path_style)
                .retry_config(RetryConfig::standard())
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(CONNECT_TIMEOUT)
                        .operation_timeout(OPERATION_TIMEOUT)
                        .build(),
                );
            if let Some(e) = &cfg.endpoint {
                b = b.endpoint_url(e);
            }
            b = match fixed {
                Some(c) => {
                    source.set(credentials::CONFIG_SOURCE.to_owned());
                    b.credentials_provider(c)
                }
                // The same HTTP client (rustls, ring) for STS, the container endpoint and
                // IMDS; the region is the store's, so no lookup goes to IMDS for one.
                None => {
                    let conf = ProviderConfig::without_region()
                        .with_http_client(http)
                        .with_region(Some(Region::new(cfg.region.clone())));
                    b.credentials_provider(NamedChain::new(&conf, source.clone()))
                }
            };
            Client::from_conf(b.build())
        };
        Ok(S3Store {
            inner: Arc::new(Inner {
                client,
                cfg,
                gets: AtomicU64::new(0),
                puts: AtomicU64::new(0),
                bucket_ops: AtomicU64::new(0),
                lists: AtomicU64::new(0),
                source,
            }),
            runtime: Some(runtime),
        })
    }

    /// Where the credentials that signed the last request came from (the configuration's keys,
    /// or the link of the standard chain that answered: see the `credentials` module), for
    /// start-up to print. Never a key, a secret or a token. `None` before the first request
    /// when the chain is used.
    pub fn credential_source(&self) -> Option<String> {
        self.inner.source.get()
    }

    /// The configuration the store was built with.
    pub fn config(&self) -> &S3Config {
        &self.inner.cfg
    }

    /// The SDK client, for operations the store does not offer (tests, administration). Run
    /// its futures with [`Self::run`].
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Runs `fut` on the store's own runtime and waits for its output, from any thread,
    /// inside an async runtime or not. `None` if the runtime is gone or the future panicked.
    pub fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Option<T> {
        let rt = self.runtime.as_ref()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }

    fn run_store<T: Send + 'static>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(fut).unwrap_or_else(|| {
            Err(StoreError::Io { op, key: key.to_owned(), msg: "the S3 client's runtime stopped".into() })
        })
    }

    fn run_bucket<T: Send + 'static>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, S3Error>> + Send + 'static,
    ) -> Result<T, S3Error> {
        self.run(fut).unwrap_or_else(|| {
            Err(S3Error::Service {
                op,
                bucket: self.inner.cfg.bucket.clone(),
                msg: "the S3 client's runtime stopped".into(),
            })
        })
    }

    /// Checks that the bucket exists and reports its versioning and Object Lock state; see
    /// [`BucketReport::require`] for whether that is enough.
    pub fn check_bucket(&self) -> Result<BucketReport, S3Error> {
        let inner = self.inner.clone();
        self.run_bucket("checking", async move { inner.check_bucket().await })
    }

    /// Creates the bucket, with versioning, and with Object Lock if `object_lock`. If the
    /// bucket exists and is accessible, that is success as long as it has what was asked for.
    pub fn create_bucket(&self, object_lock: bool) -> Result<(), S3Error> {
        let inner = self.inner.clone();
        let existed = self.run_bucket("creating", async move { inner.create_bucket(object_lock).await })?;
        if existed {
            self.check_bucket()?.require(object_lock)?;
        }
        Ok(())
    }
}

impl Inner {
    fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn s3_url(&self, full_key: &str) -> String {
        format!("s3://{}/{full_key}", self.cfg.bucket)
    }

    async fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        self.count(&self.gets);
        let full = self.cfg.full_key(key);
        let io = |msg: String| StoreError::Io { op: "reading", key: key.to_owned(), msg };
        let resp = match self.client.get_object().bucket(&self.cfg.bucket).key(&full).send().await {
            Ok(r) => r,
            Err(e) => {
                let (status, code) = status_code(&e);
                // A missing key (or a delete marker); a missing bucket is an error.
                if code.as_deref() == Some("NoSuchKey") || (status == Some(404) && code.is_none()) {
                    return Ok(None);
                }
                return Err(io(format!("{}: {}", self.s3_url(&full), describe(&e))));
            }
        };
        let too_large = || StoreError::TooLarge { key: key.to_owned(), limit };
        let announced = resp.content_length().unwrap_or(0);
        if u64::try_from(announced).unwrap_or(0) > limit {
            return Err(too_large());
        }
        let etag = resp
            .e_tag()
            .map(str::to_owned)
            .ok_or_else(|| io(format!("{}: S3 returned the object without an ETag", self.s3_url(&full))))?;
        let mut body = resp.body;
        let cap = usize::try_from(u64::try_from(announced).unwrap_or(0).min(limit)).unwrap_or(0);
        let mut bytes = Vec::with_capacity(cap);
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            io(format!("{}: reading the body: {}", self.s3_url(&full), DisplayErrorContext(e)))
        })? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(Object { bytes, etag }))
    }

    async fn put(
        &self,
        key: &str,
        data: Vec<u8>,
        cond: OwnedCond,
        retain: bool,
    ) -> Result<String, StoreError> {
        self.count(&self.puts);
        let full = self.cfg.full_key(key);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.cfg.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(data));
        req = match &cond {
            OwnedCond::Any => req,
            OwnedCond::IfAbsent => req.if_none_match("*"),
            OwnedCond::IfMatch(tag) => req.if_match(tag),
        };
        if retain && let Some(r) = self.cfg.retention {
            let mode = match r.mode {
                RetentionMode::Compliance => ObjectLockMode::Compliance,
                RetentionMode::Governance => ObjectLockMode::Governance,
            };
            req = req
                .object_lock_mode(mode)
                .object_lock_retain_until_date(DateTime::from(SystemTime::now() + r.period));
        }
        match req.send().await {
            Ok(out) => out.e_tag().map(str::to_owned).ok_or_else(|| StoreError::Io {
                op: "writing",
                key: key.to_owned(),
                msg: format!("{}: S3 accepted the write but returned no ETag", self.s3_url(&full)),
            }),
            Err(e) => {
                let (status, code) = status_code(&e);
                let code = code.as_deref();
                let failed_condition = status == Some(412)
                    || code == Some("PreconditionFailed")
                    || code == Some("ConditionalRequestConflict")
                    // S3 answers an If-Match write to a missing key with 404 NoSuchKey.
                    || (matches!(cond, OwnedCond::IfMatch(_))
                        && (code == Some("NoSuchKey") || (status == Some(404) && code.is_none())));
                if failed_condition && !matches!(cond, OwnedCond::Any) {
                    Err(StoreError::Precondition { key: key.to_owned() })
                } else {
                    Err(StoreError::Io {
                        op: "writing",
                        key: key.to_owned(),
                        msg: format!("{}: {}", self.s3_url(&full), describe(&e)),
                    })
                }
            }
        }
    }

    /// [`ObjectStore::first_key_after`]: one ListObjectVersions call, which sees versions and
    /// delete markers alike.
    async fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        self.count(&self.lists);
        let full_prefix = self.cfg.full_key(prefix);
        let mut req =
            self.client.list_object_versions().bucket(&self.cfg.bucket).prefix(&full_prefix).max_keys(1);
        if !after.is_empty() {
            req = req.key_marker(self.cfg.full_key(after));
        }
        let resp = req.send().await.map_err(|e| StoreError::Io {
            op: "listing",
            key: prefix.to_owned(),
            msg: format!("{}: {}", self.s3_url(&full_prefix), describe(&e)),
        })?;
        let versions = resp.versions().iter().filter_map(|v| v.key());
        let markers = resp.delete_markers().iter().filter_map(|m| m.key());
        let first = versions.chain(markers).min().map(str::to_owned);
        // Back to a key relative to the store's prefix.
        let strip = self.cfg.full_key("");
        Ok(first.map(|k| k.strip_prefix(&strip).map(str::to_owned).unwrap_or(k)))
    }

    /// [`graven_tlog::put_immutable`], asynchronously.
    async fn put_immutable(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        let len = data.len() as u64;
        // The put consumes its copy; keep one to compare with.
        match self.put(key, data.clone(), OwnedCond::IfAbsent, true).await {
            Ok(_) => Ok(()),
            Err(StoreError::Precondition { .. }) => match self.get(key, len).await {
                Ok(Some(o)) if o.bytes == data => Ok(()),
                Ok(_) | Err(StoreError::TooLarge { .. }) => Err(StoreError::Conflict { key: key.to_owned() }),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn check_bucket(&self) -> Result<BucketReport, S3Error> {
        let bucket = self.cfg.bucket.clone();
        self.count(&self.bucket_ops);
        if let Err(e) = self.client.head_bucket().bucket(&bucket).send().await {
            let (status, _) = status_code(&e);
            return Err(match status {
                Some(404) => S3Error::NoSuchBucket { bucket, at: self.at() },
                Some(403) => S3Error::BucketTaken { bucket },
                _ => S3Error::Service { op: "checking", bucket, msg: describe(&e) },
            });
        }
        self.count(&self.bucket_ops);
        let versioning = match self.client.get_bucket_versioning().bucket(&bucket).send().await {
            Ok(v) => match v.status() {
                Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
                Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
                _ => Versioning::Off,
            },
            Err(e) => {
                return Err(S3Error::Service { op: "reading the versioning of", bucket, msg: describe(&e) });
            }
        };
        self.count(&self.bucket_ops);
        let lock = self.client.get_object_lock_configuration().bucket(&bucket).send().await;
        let (object_lock, default_retention) = match lock {
            Ok(o) => {
                let conf = o.object_lock_configuration();
                let enabled = conf
                    .and_then(|c| c.object_lock_enabled())
                    .is_some_and(|e| *e == ObjectLockEnabled::Enabled);
                let rule = conf.and_then(|c| c.rule()).and_then(|r| r.default_retention());
                let default = if enabled { retention::read_default_retention(&bucket, rule)? } else { None };
                (enabled, default)
            }
            Err(e) => {
                let (status, code) = status_code(&e);
                if code.as_deref() == Some("ObjectLockConfigurationNotFoundError") || status == Some(404) {
                    (false, None)
                } else {
                    return Err(S3Error::Service {
                        op: "reading the Object Lock configuration of",
                        bucket,
                        msg: describe(&e),
                    });
                }
            }
        };
        Ok(BucketReport { bucket, versioning, object_lock, default_retention })
    }

    fn at(&self) -> String {
        match &self.cfg.endpoint {
            Some(e) => format!(" at {e}"),
            None => format!(" in {}", self.cfg.region),
        }
    }

    /// Creates the bucket and turns versioning on; whether it existed already.
    async fn create_bucket(&self, object_lock: bool) -> Result<bool, S3Error> {
        let bucket = self.cfg.bucket.clone();
        let mut req = self.client.create_bucket().bucket(&bucket);
        if object_lock {
            req = req.object_lock_enabled_for_bucket(true);
        }
        if self.cfg.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.cfg.region.as_str()))
                    .build(),
            );
        }
        self.count(&self.bucket_ops);
        let existed = match req.send().await {
            Ok(_) => false,
            Err(e) => {
                let (_, code) = status_code(&e);
                match code.as_deref() {
                    // Some services say "exists" for one's own buckets too; the checks after
                    // this tell whether it is really ours.
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists") => true,
                    _ => return Err(S3Error::Service { op: "creating", bucket, msg: describe(&e) }),
                }
            }
        };
        if !existed {
            self.count(&self.bucket_ops);
            let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
            if let Err(e) = self
                .client
                .put_bucket_versioning()
                .bucket(&bucket)
                .versioning_configuration(enabled)
                .send()
                .await
            {
                return Err(S3Error::Service { op: "enabling versioning on", bucket, msg: describe(&e) });
            }
        }
        Ok(existed)
    }
}

/// The HTTP status and S3 error code of a failed request, where there was an answer.
fn status_code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> (Option<u16>, Option<String>) {
    (e.raw_response().map(|r| r.status().as_u16()), e.code().map(str::to_owned))
}

/// An operator's description of a failed request: the S3 error code and HTTP status, or why
/// no answer came.
fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let err = s.err();
            format!(
                "S3 answered HTTP {status}, error code {}: {}",
                err.code().unwrap_or("(none)"),
                err.message().unwrap_or("(no message)")
            )
        }
        SdkError::TimeoutError(_) => format!(
            "no answer from S3 within {} s (retries included); is the endpoint reachable?",
            OPERATION_TIMEOUT.as_secs()
        ),
        SdkError::DispatchFailure(_) => format!("could not reach S3: {}", DisplayErrorContext(e)),
        _ => DisplayErrorContext(e).to_string(),
    }
}

impl ObjectStore for S3Store {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        let inner = self.inner.clone();
        let k = key.to_owned();
        self.run_store("reading", key, async move { inner.get(&k, limit).await })
    }

    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        let inner = self.inner.clone();
        let k = key.to_owned();
        let data = data.to_vec();
        let cond = match cond {
            Cond::Any => OwnedCond::Any,
            Cond::IfAbsent => OwnedCond::IfAbsent,
            Cond::IfMatch(t) => OwnedCond::IfMatch(t.to_owned()),
        };
        self.run_store("writing", key, async move { inner.put(&k, data, cond, retain).await })
    }

    /// Up to [`MAX_IN_FLIGHT`] writes at a time; the first error stops the rest.
    fn put_immutable_all(&self, objects: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let Some(first) = objects.first() else { return Ok(()) };
        let inner = self.inner.clone();
        let objects: Vec<(String, Vec<u8>)> = objects.to_vec();
        self.run_store("writing", &first.0, async move {
            futures_util::stream::iter(objects)
                .map(|(key, data)| {
                    let inner = inner.clone();
                    async move { inner.put_immutable(&key, data).await }
                })
                .buffer_unordered(MAX_IN_FLIGHT)
                .try_for_each(|()| std::future::ready(Ok(())))
                .await
        })
    }

    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        let inner = self.inner.clone();
        let (p, a) = (prefix.to_owned(), after.to_owned());
        self.run_store("listing", prefix, async move { inner.first_key_after(&p, &a).await })
    }

    fn location(&self) -> String {
        self.inner.cfg.url()
    }

    fn request_counts(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("get", self.inner.gets.load(Ordering::Relaxed)),
            ("put", self.inner.puts.load(Ordering::Relaxed)),
            ("bucket", self.inner.bucket_ops.load(Ordering::Relaxed)),
            ("list", self.inner.lists.load(Ordering::Relaxed)),
        ]
    }
}
