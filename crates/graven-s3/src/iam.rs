//! Every S3 operation the store calls, the IAM action each needs, and the least-privilege
//! policies built from them. One table serves the code, the docs (docs/scale-out.md prints
//! [`serve_policy`] and [`verify_policy`]) and the test that fails when the code calls an
//! operation the table does not list (`crates/graven-s3/tests/iam.rs`).
//!
//! Not in any policy, on purpose: `s3:DeleteObject`, `s3:DeleteObjectVersion`,
//! `s3:BypassGovernanceRetention`, `s3:PutBucketObjectLockConfiguration`,
//! `s3:PutObjectLegalHold`. Graven never deletes, and a node that cannot delete cannot be made
//! to rewrite history through its credentials.

/// Who makes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `graven serve --storage s3://...` (writer and read replicas alike: every node probes
    /// conditional writes at start), and its `replay_claims` location.
    Serve,
    /// `graven verify s3://...` and `graven import cloudtrail s3://...`: reads only.
    Read,
    /// [`crate::S3Store::create_bucket`]: the tests and set-up tools; never the `graven`
    /// binary, whose buckets an administrator creates.
    Setup,
}

/// What an IAM action applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `arn:aws:s3:::bucket`
    Bucket,
    /// `arn:aws:s3:::bucket/prefix/*`
    Objects,
}

/// One S3 operation the code calls.
#[derive(Debug, Clone, Copy)]
pub struct S3Call {
    /// The SDK's name for it (`Client::put_object` is `put_object`).
    pub operation: &'static str,
    /// The IAM actions it needs.
    pub actions: &'static [&'static str],
    pub resource: Resource,
    /// Who calls it: the most privileged use decides (a read every node makes is `Read`).
    pub caller: Caller,
    /// Why, for the docs.
    pub why: &'static str,
}

/// Every S3 operation in the store, in the order the docs list them.
pub const S3_CALLS: &[S3Call] = &[
    S3Call {
        operation: "head_bucket",
        actions: &["s3:ListBucket"],
        resource: Resource::Bucket,
        // Readers need s3:ListBucket too: without it S3 answers a GET of a missing key with
        // 403, not 404, and a missing key is an answer the log's readers rely on.
        caller: Caller::Read,
        why: "start-up of graven serve: the bucket exists and is reachable (S3 authorizes HeadBucket with s3:ListBucket; the same action makes a missing key a 404, not a 403, for every reader)",
    },
    S3Call {
        operation: "get_bucket_versioning",
        actions: &["s3:GetBucketVersioning"],
        resource: Resource::Bucket,
        caller: Caller::Serve,
        why: "start-up: versioning is on",
    },
    S3Call {
        operation: "get_object_lock_configuration",
        actions: &["s3:GetBucketObjectLockConfiguration"],
        resource: Resource::Bucket,
        caller: Caller::Serve,
        why: "start-up: Object Lock and the default retention rule",
    },
    S3Call {
        operation: "get_object",
        actions: &["s3:GetObject"],
        resource: Resource::Objects,
        caller: Caller::Read,
        why: "reading the head, checkpoints, tiles, bundles, the lease, identities",
    },
    S3Call {
        operation: "list_object_versions",
        actions: &["s3:ListBucketVersions"],
        resource: Resource::Bucket,
        caller: Caller::Read,
        why: "finding the first key after another (versions and delete markers alike)",
    },
    S3Call {
        operation: "put_object",
        actions: &["s3:PutObject", "s3:PutObjectRetention"],
        resource: Resource::Objects,
        caller: Caller::Serve,
        why: "conditional writes (If-None-Match, If-Match); s3:PutObjectRetention for the explicit Object Lock retention headers, when retention is chosen with --retention-mode/--retention-days",
    },
    S3Call {
        operation: "create_bucket",
        actions: &["s3:CreateBucket"],
        resource: Resource::Bucket,
        caller: Caller::Setup,
        why: "S3Store::create_bucket, for tests",
    },
    S3Call {
        operation: "put_bucket_versioning",
        actions: &["s3:PutBucketVersioning"],
        resource: Resource::Bucket,
        caller: Caller::Setup,
        why: "S3Store::create_bucket, for tests",
    },
];

/// Actions no Graven policy may grant.
pub const NEVER: &[&str] = &[
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:BypassGovernanceRetention",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutObjectLegalHold",
];

/// The actions `callers` need on `resource`, sorted, each once.
pub fn actions(callers: &[Caller], resource: Resource) -> Vec<&'static str> {
    let mut a: Vec<&'static str> = S3_CALLS
        .iter()
        .filter(|c| c.resource == resource && callers.contains(&c.caller))
        .flat_map(|c| c.actions.iter().copied())
        .collect();
    a.sort_unstable();
    a.dedup();
    a
}

/// The IAM policy for the nodes of a log at `s3://bucket/prefix` (`prefix` may be empty).
pub fn serve_policy(bucket: &str, prefix: &str) -> String {
    policy(bucket, prefix, &[Caller::Serve, Caller::Read])
}

/// The IAM policy for `graven verify s3://bucket/prefix`: reads only.
pub fn verify_policy(bucket: &str, prefix: &str) -> String {
    policy(bucket, prefix, &[Caller::Read])
}

fn policy(bucket: &str, prefix: &str, callers: &[Caller]) -> String {
    let list = |v: Vec<&str>| v.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
    let objects = if prefix.is_empty() {
        format!("arn:aws:s3:::{bucket}/*")
    } else {
        format!("arn:aws:s3:::{bucket}/{prefix}/*")
    };
    format!(
        r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{
      "Sid": "GravenBucket",
      "Effect": "Allow",
      "Action": [{}],
      "Resource": "arn:aws:s3:::{bucket}"
    }},
    {{
      "Sid": "GravenObjects",
      "Effect": "Allow",
      "Action": [{}],
      "Resource": "{objects}"
    }}
  ]
}}"#,
        list(actions(callers, Resource::Bucket)),
        list(actions(callers, Resource::Objects)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_policy_grants_a_forbidden_action() {
        for p in [serve_policy("b", "p"), verify_policy("b", "")] {
            for never in NEVER {
                assert!(!p.contains(never), "{never} in {p}");
            }
        }
        for c in S3_CALLS {
            for a in c.actions {
                assert!(!NEVER.contains(a), "{}", c.operation);
            }
        }
    }

    #[test]
    fn setup_calls_stay_out_of_the_policies() {
        let p = serve_policy("b", "p");
        assert!(!p.contains("s3:CreateBucket") && !p.contains("s3:PutBucketVersioning"), "{p}");
        let v = verify_policy("b", "p");
        assert!(!v.contains("s3:PutObject"), "{v}");
        assert!(v.contains("s3:GetObject") && v.contains("s3:ListBucketVersions"), "{v}");
    }
}
