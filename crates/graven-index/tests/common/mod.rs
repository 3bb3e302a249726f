//! Shared test helpers: a naive in-memory model of the index.

#![allow(dead_code)]

use graven_index::{Index, IndexError, Order, Page, Query};

/// One event of the model. `None` fields are left out of the JSON.
#[derive(Debug, Clone, Default)]
pub struct Ev {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<String>,
    pub logged_at: Option<String>,
    /// Raw bytes instead of JSON: matches nothing.
    pub garbage: bool,
}

pub fn ts(t: u32) -> String {
    format!("2026-11-26T{:02}:{:02}:{:02}.{:06}Z", t / 3600 % 24, t / 60 % 60, t % 60, t % 7)
}

impl Ev {
    pub fn json(&self) -> Vec<u8> {
        if self.garbage {
            return b"\xffnot json{".to_vec();
        }
        let mut m = serde_json::Map::new();
        if let Some(a) = &self.actor {
            m.insert("actor".into(), serde_json::json!({"auth": "bearer", "id": a, "kind": "user"}));
        }
        if let Some(a) = &self.action {
            m.insert("action".into(), a.clone().into());
        }
        if let Some(r) = &self.resource {
            m.insert("resource".into(), serde_json::json!({"id": r, "type": "k8s.deployment"}));
        }
        if let Some(o) = &self.outcome {
            m.insert("outcome".into(), o.clone().into());
        }
        if let Some(t) = &self.logged_at {
            m.insert("logged_at".into(), t.clone().into());
        }
        m.insert("v".into(), 1.into());
        serde_json::to_vec(&serde_json::Value::Object(m)).unwrap()
    }

    pub fn matches(&self, q: &Query) -> bool {
        fn eq(want: &Option<String>, have: &Option<String>) -> bool {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        }
        if self.garbage {
            return q.actor.is_none()
                && q.action.is_none()
                && q.resource.is_none()
                && q.outcome.is_none()
                && q.since.is_none()
                && q.until.is_none();
        }
        eq(&q.actor, &self.actor)
            && eq(&q.action, &self.action)
            && eq(&q.resource, &self.resource)
            && eq(&q.outcome, &self.outcome)
            && q.since.as_ref().is_none_or(|s| self.logged_at.as_ref().is_some_and(|t| t >= s))
            && q.until.as_ref().is_none_or(|u| self.logged_at.as_ref().is_some_and(|t| t < u))
    }
}

/// The expected result: all matching indices in the query's order.
pub fn expected(events: &[Ev], q: &Query) -> Vec<u64> {
    let mut v: Vec<u64> = (0..).zip(events).filter(|(_, e)| e.matches(q)).map(|(i, _)| i).collect();
    if q.order == Order::NewestFirst {
        v.reverse();
    }
    v
}

/// Follows cursors to the end, checking page sizes; returns all indices and the number of pages.
pub fn collect_all(
    search: impl Fn(&Query) -> Result<Page, IndexError>,
    q: &Query,
    max_pages: usize,
) -> (Vec<u64>, usize) {
    let limit = if q.limit == 0 { graven_index::DEFAULT_LIMIT } else { q.limit };
    let mut q = q.clone();
    q.cursor = None;
    let mut all = Vec::new();
    for pages in 1..=max_pages {
        let page = search(&q).unwrap();
        assert!(page.indices.len() <= limit, "page of {} > limit {limit}", page.indices.len());
        all.extend_from_slice(&page.indices);
        match page.next_cursor {
            None => return (all, pages),
            Some(c) => q.cursor = Some(c),
        }
    }
    panic!("no end after {max_pages} pages for {q:?}");
}

pub fn add_all(index: &Index, first: u64, events: &[Ev]) {
    let bytes: Vec<Vec<u8>> = events.iter().map(Ev::json).collect();
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    index.add(first, &refs).unwrap();
}
