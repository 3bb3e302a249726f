//! Alert rules (docs/rules.md): evaluated on every committed event; an alert is an event by
//! the server naming the rule and the event that raised it, counted in /metrics, delivered to
//! webhooks at least once; not raised twice for one event across a crash; reloaded on SIGHUP.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graven_server::testing::Harness;
use serde_json::{Value, json};

const RULES: &str = r#"
[[rules]]
name = "first-time"
kind = "new_action"
actors = ["svc:*"]
min_events = 1
severity = "high"

[[rules]]
name = "busy"
kind = "rate"
actors = ["svc:*"]
max = 3
window_seconds = 600

[[rules]]
name = "refused-often"
kind = "denied_burst"
actors = ["svc:*"]
max = 2
window_seconds = 600
"#;

/// The alert events from index `from` on, once there are at least `n` (up to 20 s).
fn alerts(h: &Harness, from: u64, n: usize) -> Vec<(u64, Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<(u64, Value)> = (from..h.size())
            .map(|i| (i, h.event(i)))
            .filter(|(_, e)| e["action"] == "graven.alert")
            .collect();
        if found.len() >= n || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn post(h: &Harness, key: &str, action: &str) -> u64 {
    let r = h.check(h.post("/v1/events").bearer(key).json(json!({"action": action, "outcome": "success"})));
    r.expect(201).json()["index"].as_u64().unwrap()
}

#[test]
fn rules_raise_alerts_as_events_by_the_server() {
    let h = Harness::builder().config(RULES).start();
    let key = h.identity("svc:deployer", "writer", &["*"]);
    let start = h.size();
    let first = post(&h, &key, "deploy.create");
    let read = post(&h, &key, "deploy.read");
    // New action for an actor with history: "deploy.read" after one event.
    let got = alerts(&h, start, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    let (at, a) = &got[0];
    assert!(*at > read);
    assert_eq!(a["actor"]["id"], "graven:server");
    assert_eq!(a["resource"], json!({"type": "graven.rule", "id": "first-time"}));
    assert_eq!(a["details"]["kind"], "new_action");
    assert_eq!(a["details"]["severity"], "high");
    assert_eq!(a["details"]["event_index"], read);
    assert_eq!(a["details"]["subject"], "svc:deployer");
    let _ = first;
    // A rate: the fourth event within the window (and one alert only, however many follow).
    for _ in 0..4 {
        post(&h, &key, "deploy.create");
    }
    let got = alerts(&h, start, 2);
    let busy: Vec<&Value> = got.iter().map(|(_, a)| a).filter(|a| a["details"]["rule"] == "busy").collect();
    assert_eq!(busy.len(), 1, "{got:?}");
    assert_eq!(h.metric("graven_alerts_total{rule=\"busy\"}"), 1);
    assert_eq!(h.metric("graven_alerts_total{rule=\"first-time\"}"), 1);
    // Denied: a writer refused three times (an action outside its patterns).
    let narrow = h.identity("svc:narrow", "writer", &["read.*"]);
    let before = h.size();
    for _ in 0..3 {
        let r = h.check(h.post("/v1/events").bearer(&narrow).json(json!({"action": "secret.delete"})));
        assert_eq!(r.status(), 403);
    }
    let got = alerts(&h, before, 1);
    let burst: Vec<&Value> =
        got.iter().map(|(_, a)| a).filter(|a| a["details"]["rule"] == "refused-often").collect();
    assert_eq!(burst.len(), 1, "{got:?}");
    assert_eq!(burst[0]["details"]["subject"], "svc:narrow");
    // Alerts raise no alerts of their own, and the log verifies.
    assert_eq!(h.verify().tree_size, h.size());
}

#[test]
fn after_a_crash_an_event_raises_its_alert_once_and_the_past_is_remembered() {
    let mut h = Harness::builder().config(RULES).start();
    let key = h.identity("svc:deployer", "writer", &["*"]);
    let start = h.size();
    post(&h, &key, "deploy.create");
    post(&h, &key, "deploy.read");
    assert_eq!(alerts(&h, start, 1).len(), 1);
    h.crash_restart();
    // The evaluator learns the past from the log: "deploy.read" is not new any more.
    post(&h, &key, "deploy.read");
    post(&h, &key, "deploy.delete");
    let got = alerts(&h, start, 2);
    let keys: Vec<(String, u64)> = got
        .iter()
        .map(|(_, a)| {
            (a["details"]["rule"].as_str().unwrap().to_owned(), a["details"]["event_index"].as_u64().unwrap())
        })
        .collect();
    let unique: std::collections::BTreeSet<&(String, u64)> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "an alert twice for one event: {keys:?}");
    let new_actions: Vec<&Value> =
        got.iter().map(|(_, a)| a).filter(|a| a["details"]["rule"] == "first-time").collect();
    assert_eq!(new_actions.len(), 2, "deploy.read before the crash, deploy.delete after: {got:?}");
    assert!(new_actions[1]["details"]["summary"].as_str().unwrap().contains("deploy.delete"));
}

#[test]
fn rules_are_reloaded_and_bad_rules_refused() {
    let h = Harness::start();
    let key = h.identity("svc:deployer", "writer", &["*"]);
    post(&h, &key, "deploy.create");
    post(&h, &key, "deploy.read");
    std::thread::sleep(Duration::from_millis(300));
    assert!(alerts(&h, 0, 0).is_empty(), "no rules, no alerts");
    // A rule that does not make sense: the reload is refused, with what to fix.
    let e = h.reload_config("[[rules]]\nname = \"x\"\nkind = \"rate\"\n").unwrap_err();
    assert!(e.to_string().contains("needs max"), "{e}");
    let r = h
        .reload_config("[[rules]]\nname = \"allowed\"\nkind = \"outside_allowed\"\nactors = [\"svc:*\"]\nactions = [\"deploy.create\"]\n")
        .unwrap();
    assert_eq!(r.applied, vec!["rules".to_owned()]);
    let from = h.size();
    post(&h, &key, "deploy.create");
    let read = post(&h, &key, "deploy.read");
    let got = alerts(&h, from, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["details"]["event_index"], read);
}

/// A loopback receiver that refuses the first `fail` posts (500), then takes them; it records
/// each post's alert index.
fn receiver(fail: usize) -> (String, Arc<Mutex<Vec<u64>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        for stream in listener.incoming().flatten() {
            let mut r = BufReader::new(stream);
            let mut len = 0usize;
            let mut index = None;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = l.strip_prefix("graven-alert-index:") {
                    index = v.trim().parse::<u64>().ok();
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert_eq!(v["alert"]["action"], "graven.alert");
            assert_eq!(v["index"].as_u64(), index);
            n += 1;
            let status = if n <= fail { "500 Internal Server Error" } else { "204 No Content" };
            if n > fail {
                seen.lock().unwrap().push(index.unwrap());
            }
            let mut s = r.into_inner();
            let _ = write!(s, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

#[test]
fn webhooks_get_every_alert_at_least_once_in_order() {
    let (url, got) = receiver(2);
    let config = format!("{RULES}\n[alerts]\nwebhooks = [\"{url}\"]\n");
    let h = Harness::builder().config(&config).start();
    let key = h.identity("svc:deployer", "writer", &["*"]);
    let start = h.size();
    post(&h, &key, "deploy.create");
    post(&h, &key, "deploy.read");
    post(&h, &key, "deploy.delete");
    let raised: Vec<u64> = alerts(&h, start, 2).into_iter().map(|(i, _)| i).collect();
    assert_eq!(raised.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(*got.lock().unwrap(), raised, "each alert, in order, after two refused posts");
    assert!(h.metric("graven_alert_webhook_posts_total{outcome=\"failed\"}") >= 2);
    assert_eq!(h.metric("graven_alert_webhook_posts_total{outcome=\"delivered\"}"), 2);
}
