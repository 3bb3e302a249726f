//! The `ObjectStore` conformance suite on `S3Store` against SeaweedFS: each test gets a fresh
//! bucket with versioning and Object Lock (governance retention for a day on retained writes),
//! and the store works under a prefix, outside which nothing may appear.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::types::ObjectLockMode;
use graven_s3::S3Store;
use graven_testkit::s3::Seaweed;
use graven_tlog::conformance::{Backend, Profile};

/// Where the store under test keeps its objects in its bucket.
const PREFIX: &str = "logs/audit";

struct OnSeaweed;

impl Backend for OnSeaweed {
    type Store = S3Store;

    fn fresh(&self, hint: &str) -> Arc<S3Store> {
        let mut cfg = Seaweed::shared().bucket(hint, true);
        cfg.prefix = PREFIX.into();
        Arc::new(S3Store::connect(cfg).unwrap())
    }

    fn reconnect(&self, store: &Arc<S3Store>) -> Arc<S3Store> {
        Arc::new(S3Store::connect(store.config().clone()).unwrap())
    }

    /// Lists the whole bucket (current objects; delete markers and old versions are not
    /// listed), and fails if anything is outside the store's prefix.
    fn keys(&self, s: &S3Store) -> Vec<String> {
        let (c, bucket) = (s.client().clone(), s.config().bucket.clone());
        let strip = s.config().full_key("");
        let all = s
            .run(async move {
                let mut keys = Vec::new();
                let mut token = None;
                loop {
                    let out = c
                        .list_objects_v2()
                        .bucket(&bucket)
                        .set_continuation_token(token)
                        .send()
                        .await
                        .unwrap();
                    keys.extend(out.contents().iter().filter_map(|o| o.key()).map(str::to_owned));
                    match out.next_continuation_token() {
                        Some(t) => token = Some(t.to_owned()),
                        None => break,
                    }
                }
                keys
            })
            .unwrap();
        let outside: Vec<&String> = all.iter().filter(|k| !k.starts_with(&strip)).collect();
        assert!(outside.is_empty(), "objects outside the prefix {strip:?}: {outside:?}");
        let mut keys: Vec<String> = all.iter().map(|k| k[strip.len()..].to_owned()).collect();
        keys.sort();
        keys
    }

    /// The Object Lock mode of the key's current version, read with HeadObject: the store's
    /// configured mode (governance), or none.
    fn retained(&self, s: &S3Store, key: &str) -> bool {
        let (c, bucket, full) = (s.client().clone(), s.config().bucket.clone(), s.config().full_key(key));
        let mode = s
            .run(async move {
                let h = c.head_object().bucket(&bucket).key(&full).send().await.unwrap();
                h.object_lock_mode().cloned()
            })
            .unwrap();
        assert!(matches!(mode, None | Some(ObjectLockMode::Governance)), "{key}: {mode:?}");
        mode.is_some()
    }

    /// A plain PutObject (a new current version, no retention) or DeleteObject (a delete
    /// marker), as anyone with the bucket's credentials may send.
    fn tamper(&self, s: &S3Store, key: &str, bytes: Option<&[u8]>) {
        let (c, bucket, full) = (s.client().clone(), s.config().bucket.clone(), s.config().full_key(key));
        let bytes = bytes.map(<[u8]>::to_vec);
        s.run(async move {
            let done = match bytes {
                Some(b) => {
                    let body = aws_sdk_s3::primitives::ByteStream::from(b);
                    let sent = c.put_object().bucket(&bucket).key(&full).body(body).send().await;
                    sent.map(|_| ()).map_err(|e| format!("{}", DisplayErrorContext(e)))
                }
                None => {
                    let sent = c.delete_object().bucket(&bucket).key(&full).send().await;
                    sent.map(|_| ()).map_err(|e| format!("{}", DisplayErrorContext(e)))
                }
            };
            done.unwrap_or_else(|e| panic!("tampering with {full}: {e}"));
        })
        .unwrap();
    }

    fn profile(&self) -> Profile {
        Profile {
            // SeaweedFS backs losing conditional writers off by whole seconds, so each round
            // costs a few seconds; 15 rounds of 8 writers is 105 lost races, on 3 keys at once.
            cas_rounds: 15,
            cas_keys: 3,
            turns: 40,
            race_writers: 3,
            race_for: Duration::from_secs(10),
            race_rounds: u64::MAX,
            race_min_acked: 100,
            every_put_batch: 300,
        }
    }
}

graven_tlog::object_store_conformance!(OnSeaweed);
