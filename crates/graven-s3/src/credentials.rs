//! Where the store's credentials come from: the keys in [`S3Config`], else the AWS SDK's
//! standard chain, each link named so that start-up can say which one answered (never the
//! secret).
//!
//! The chain is the order of `aws_config`'s `DefaultCredentialsChain`, built from the same
//! providers. It is rebuilt here only to know which link answered:
//!
//! 1. environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`)
//! 2. the shared config and credentials files (`AWS_PROFILE`, else `default`): static keys,
//!    `role_arn` with a `source_profile` or `credential_source`, `sso_session` / SSO
//! 3. a web identity token file (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, what EKS IRSA
//!    sets) exchanged with STS `AssumeRoleWithWebIdentity`
//! 4. a container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
//!    `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`:
//!    ECS task roles and EKS Pod Identity)
//! 5. the EC2 instance profile, through IMDSv2
//!
//! A link with nothing to offer passes to the next; a link that is configured and fails stops
//! the chain with its error (as the SDK's chain does), so a broken web identity set-up is
//! reported rather than hidden by an instance profile. Temporary credentials are cached by the
//! S3 client and fetched again when they are within 5 to 10 s of their expiry (the SDK's lazy
//! identity cache), on the next request that needs them.

use std::sync::{Arc, Mutex};

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, future};

/// The links of the chain, in order: a short name, and how to describe the link from the
/// environment it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Environment,
    Profile,
    WebIdentity,
    Container,
    InstanceProfile,
}

impl Link {
    /// What start-up prints for this link: where the credentials came from, with the
    /// non-secret settings that chose it (a profile's name, a role's ARN, a file's path, an
    /// endpoint), never a key, a secret or a token.
    fn describe(self, env: &dyn Fn(&str) -> Option<String>) -> String {
        let or = |k: &str, d: &str| env(k).filter(|v| !v.trim().is_empty()).unwrap_or_else(|| d.to_owned());
        match self {
            Link::Environment => "environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)".into(),
            Link::Profile => format!(
                "profile {} of the shared AWS config files ({}, {})",
                or("AWS_PROFILE", "default"),
                or("AWS_CONFIG_FILE", "~/.aws/config"),
                or("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
            ),
            Link::WebIdentity => format!(
                "web identity token file {} for role {} (STS AssumeRoleWithWebIdentity)",
                or("AWS_WEB_IDENTITY_TOKEN_FILE", "(unset)"),
                or("AWS_ROLE_ARN", "(unset)")
            ),
            Link::Container => {
                let at = match env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").filter(|v| !v.is_empty()) {
                    Some(rel) => format!("http://169.254.170.2{rel}"),
                    None => or("AWS_CONTAINER_CREDENTIALS_FULL_URI", "(unset)"),
                };
                format!("container credentials endpoint {at} (ECS task role or EKS Pod Identity)")
            }
            Link::InstanceProfile => {
                let at = or("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254");
                format!("EC2 instance profile (IMDSv2 at {at})")
            }
        }
    }
}

/// Where the credentials the store signs with came from, as start-up prints it.
#[derive(Clone, Default)]
pub(crate) struct SourceCell(Arc<Mutex<Option<String>>>);

impl SourceCell {
    pub(crate) fn set(&self, s: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
    }

    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The SDK's default chain, link by link, recording in `source` which link answered last.
pub(crate) struct NamedChain {
    links: Vec<(Link, Box<dyn ProvideCredentials>)>,
    source: SourceCell,
}

impl std::fmt::Debug for NamedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<Link> = self.links.iter().map(|(l, _)| *l).collect();
        f.debug_struct("NamedChain").field("links", &names).finish_non_exhaustive()
    }
}

impl NamedChain {
    /// The chain on `conf` (its HTTP client, region and the process environment).
    pub(crate) fn new(conf: &ProviderConfig, source: SourceCell) -> NamedChain {
        let links: Vec<(Link, Box<dyn ProvideCredentials>)> = vec![
            (Link::Environment, Box::new(EnvironmentVariableCredentialsProvider::new())),
            (Link::Profile, Box::new(ProfileFileCredentialsProvider::builder().configure(conf).build())),
            (
                Link::WebIdentity,
                Box::new(WebIdentityTokenCredentialsProvider::builder().configure(conf).build()),
            ),
            (Link::Container, Box::new(EcsCredentialsProvider::builder().configure(conf).build())),
            (Link::InstanceProfile, Box::new(ImdsCredentialsProvider::builder().configure(conf).build())),
        ];
        NamedChain { links, source }
    }

    async fn resolve(&self) -> provider::Result {
        let mut tried = Vec::new();
        for (link, p) in &self.links {
            match p.provide_credentials().await {
                Ok(c) => {
                    self.source.set(link.describe(&|k| std::env::var(k).ok()));
                    return Ok(c);
                }
                Err(CredentialsError::CredentialsNotLoaded(_)) => tried.push(*link),
                Err(e) => {
                    let what = link.describe(&|k| std::env::var(k).ok());
                    return Err(CredentialsError::provider_error(LinkFailed { what, source: e }));
                }
            }
        }
        Err(CredentialsError::not_loaded(NoCredentials))
    }
}

impl ProvideCredentials for NamedChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.resolve())
    }
}

/// A configured link of the chain that failed, named.
#[derive(Debug)]
struct LinkFailed {
    what: String,
    source: CredentialsError,
}

impl std::fmt::Display for LinkFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "S3 credentials from the {}: {}",
            self.what,
            aws_sdk_s3::error::DisplayErrorContext(&self.source)
        )
    }
}

impl std::error::Error for LinkFailed {}

/// No link of the chain had credentials.
#[derive(Debug)]
struct NoCredentials;

impl std::fmt::Display for NoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no S3 credentials: none in the environment (AWS_ACCESS_KEY_ID), the shared config files (AWS_PROFILE), a web identity token file (AWS_WEB_IDENTITY_TOKEN_FILE), a container endpoint (AWS_CONTAINER_CREDENTIALS_*) or the EC2 instance metadata; configure one of them (docs/s3.md, \"Credentials\")",
        )
    }
}

impl std::error::Error for NoCredentials {}

/// What start-up prints for the keys given in the `S3Config` (read from the
/// environment by `S3Config::from_url`), which take precedence over the chain.
pub(crate) const CONFIG_SOURCE: &str =
    "static keys from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), no refresh";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn descriptions_name_the_source_and_never_a_secret() {
        let env = |k: &str| -> Option<String> {
            match k {
                "AWS_ROLE_ARN" => Some("arn:aws:iam::123456789012:role/graven".into()),
                "AWS_WEB_IDENTITY_TOKEN_FILE" => Some("/var/run/secrets/token".into()),
                "AWS_CONTAINER_CREDENTIALS_FULL_URI" => Some("http://169.254.170.23/v1/credentials".into()),
                "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" | "AWS_CONTAINER_AUTHORIZATION_TOKEN" => {
                    Some("SECRET-VALUE".into())
                }
                _ => None,
            }
        };
        let all =
            [Link::Environment, Link::Profile, Link::WebIdentity, Link::Container, Link::InstanceProfile];
        for l in all {
            assert!(!l.describe(&env).contains("SECRET-VALUE"), "{l:?}");
        }
        assert_eq!(
            Link::WebIdentity.describe(&env),
            "web identity token file /var/run/secrets/token for role arn:aws:iam::123456789012:role/graven (STS AssumeRoleWithWebIdentity)"
        );
        assert!(Link::Container.describe(&env).contains("http://169.254.170.23/v1/credentials"));
        assert!(Link::Profile.describe(&env).starts_with("profile default "));
        assert_eq!(
            Link::InstanceProfile.describe(&env),
            "EC2 instance profile (IMDSv2 at http://169.254.169.254)"
        );
    }
}
