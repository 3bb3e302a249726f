//! One witness's HTTP client: `POST <submission prefix>/add-checkpoint`, keep-alive (the spec:
//! clients SHOULD use keep-alive connections), a timeout per request, bounded answers.

use std::time::Duration;

use crate::request::{Answer, AnswerError, MAX_ANSWER_BYTES, read_answer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Transport(String),
    #[error("the answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Answer(#[from] AnswerError),
}

/// The client for one witness.
#[derive(Debug, Clone)]
pub struct WitnessHttp {
    endpoint: String,
    agent: ureq::Agent,
}

impl WitnessHttp {
    /// `prefix` is the witness's submission prefix (the policy's URL for it).
    pub fn new(prefix: &str, timeout: Duration) -> Self {
        let endpoint = format!("{}/add-checkpoint", prefix.trim_end_matches('/'));
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("graven/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        WitnessHttp { endpoint, agent }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one request body and reads the answer (blocking).
    pub fn add_checkpoint(&self, body: &str) -> Result<Answer, CallError> {
        let mut resp = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "text/plain; charset=utf-8")
            .send(body)
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let text =
            resp.body_mut().with_config().limit(MAX_ANSWER_BYTES).read_to_string().map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => CallError::TooLarge,
                e => CallError::Transport(e.to_string()),
            })?;
        Ok(read_answer(status, &text)?)
    }
}

/// Whether `url` can be a submission prefix: `http://` or `https://`, a host, no spaces.
pub fn valid_prefix(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}
