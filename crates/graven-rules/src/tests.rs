use super::*;
use proptest::prelude::*;

fn rules(toml_like: Vec<RuleConfig>) -> Rules {
    Rules::from_config(&toml_like).unwrap()
}

fn rule(name: &str, kind: &str) -> RuleConfig {
    RuleConfig { name: name.into(), kind: kind.into(), ..Default::default() }
}

/// An event of `actor` doing `action` at `t` seconds after 2026-12-07T00:00:00Z.
fn ev(actor: &str, action: &str, t: i64, outcome: &str, ip: Option<&str>) -> Vec<u8> {
    let at = time::OffsetDateTime::from_unix_timestamp(1_796_601_600 + t).unwrap();
    let logged_at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut v = json!({"action": action, "actor": {"id": actor}, "logged_at": logged_at, "outcome": outcome});
    if let Some(ip) = ip {
        v["source"] = json!({"ip": ip});
    }
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn outside_allowed_checks_actions_hours_and_networks() {
    let mut r = rule("ci-bounds", "outside_allowed");
    r.actors = vec!["svc:ci-*".into()];
    r.actions = vec!["deploy.*".into(), "read.*".into()];
    r.hours = Some("06:00-20:00".into());
    r.networks = vec!["10.0.0.0/8".into()];
    let mut e = Evaluator::new(rules(vec![r]));
    let h = 3600;
    assert!(e.observe(0, &ev("svc:ci-1", "deploy.app", 9 * h, "success", Some("10.1.2.3")), true).is_empty());
    let a = e.observe(1, &ev("svc:ci-1", "secret.delete", 9 * h, "success", Some("10.1.2.3")), true);
    assert_eq!(a.len(), 1);
    assert!(a[0].summary.contains("\"secret.delete\" is not among the allowed actions"), "{}", a[0].summary);
    assert_eq!((a[0].event_index, a[0].kind, a[0].subject.as_str()), (1, "outside_allowed", "svc:ci-1"));
    let a = e.observe(2, &ev("svc:ci-1", "deploy.app", 22 * h, "success", Some("10.1.2.3")), true);
    assert!(a[0].summary.contains("22:00 UTC, outside the allowed hours"));
    let a = e.observe(3, &ev("svc:ci-1", "deploy.app", 9 * h, "success", Some("192.0.2.7")), true);
    assert!(a[0].summary.contains("from 192.0.2.7"));
    let a = e.observe(4, &ev("svc:ci-1", "deploy.app", 9 * h, "success", None), true);
    assert!(a[0].summary.contains("no known address"));
    // Another actor: the rule does not apply.
    assert!(e.observe(5, &ev("svc:web", "secret.delete", 22 * h, "success", None), true).is_empty());
}

#[test]
fn hours_may_wrap_midnight() {
    let mut r = rule("night-shift", "outside_allowed");
    r.hours = Some("22:00-06:00".into());
    let mut e = Evaluator::new(rules(vec![r]));
    assert!(e.observe(0, &ev("a", "x", 23 * 3600, "success", None), true).is_empty());
    assert!(e.observe(1, &ev("a", "x", 3 * 3600, "success", None), true).is_empty());
    assert_eq!(e.observe(2, &ev("a", "x", 12 * 3600, "success", None), true).len(), 1);
    assert_eq!(e.observe(3, &ev("a", "x", 6 * 3600, "success", None), true).len(), 1, "the end is excluded");
}

#[test]
fn a_dormant_actor_acting_again_alerts_once_it_was_seen() {
    let mut r = rule("dormant", "dormant_active");
    r.days = Some(30);
    let mut e = Evaluator::new(rules(vec![r]));
    let day = 86_400;
    assert!(
        e.observe(0, &ev("svc:old", "read", 0, "success", None), true).is_empty(),
        "first seen: not dormant"
    );
    assert!(e.observe(1, &ev("svc:old", "read", 29 * day, "success", None), true).is_empty());
    let a = e.observe(2, &ev("svc:old", "write", 60 * day, "success", None), true);
    assert_eq!(a.len(), 1);
    assert!(a[0].summary.contains("after 31 days"), "{}", a[0].summary);
    assert!(e.observe(3, &ev("svc:old", "write", 60 * day + 1, "success", None), true).is_empty());
}

#[test]
fn a_new_action_alerts_after_the_actor_has_a_history() {
    let mut r = rule("new", "new_action");
    r.min_events = Some(2);
    let mut e = Evaluator::new(rules(vec![r]));
    assert!(e.observe(0, &ev("a", "read", 0, "success", None), true).is_empty(), "no history yet");
    assert!(e.observe(1, &ev("a", "list", 1, "success", None), true).is_empty(), "one event of history");
    assert!(e.observe(2, &ev("a", "read", 2, "success", None), true).is_empty(), "seen before");
    let a = e.observe(3, &ev("a", "delete", 3, "success", None), true);
    assert_eq!(a.len(), 1);
    assert!(a[0].summary.contains("\"delete\" for the first time (after 3 events)"));
    assert!(e.observe(4, &ev("a", "delete", 4, "success", None), true).is_empty());
}

#[test]
fn rates_and_denied_bursts_alert_once_per_window() {
    let mut r = rule("rate", "rate");
    (r.max, r.window_seconds) = (Some(3), Some(60));
    let mut d = rule("burst", "denied_burst");
    (d.max, d.window_seconds, d.per) = (Some(2), Some(10), Some("source".into()));
    let mut e = Evaluator::new(rules(vec![r, d]));
    let mut raised = Vec::new();
    for i in 0..10u64 {
        raised.extend(e.observe(i, &ev("a", "x", i as i64, "success", None), true));
    }
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!((raised[0].rule.as_str(), raised[0].event_index), ("rate", 3));
    // After the quiet window, a burst alerts again.
    let more: Vec<Alert> = (0..5)
        .flat_map(|i| e.observe(100 + i, &ev("a", "x", 120 + i as i64, "success", None), true))
        .collect();
    assert_eq!(more.len(), 1);
    // Denied events from one address, by several actors: per source.
    let burst: Vec<Alert> = (0..4)
        .flat_map(|i| {
            e.observe(
                200 + i,
                &ev(&format!("x{i}"), "login", 1000 + i as i64, "denied", Some("192.0.2.1")),
                true,
            )
        })
        .filter(|a| a.rule == "burst")
        .collect();
    assert_eq!(burst.len(), 1);
    assert_eq!((burst[0].subject.as_str(), burst[0].event_index), ("192.0.2.1", 202));
}

#[test]
fn learning_without_alerting_and_alert_events_are_skipped() {
    let mut r = rule("new", "new_action");
    r.min_events = Some(1);
    let mut e = Evaluator::new(rules(vec![r]));
    assert!(e.observe(0, &ev("a", "read", 0, "success", None), false).is_empty());
    assert!(e.observe(1, &ev("a", "write", 1, "success", None), false).is_empty(), "learning only");
    assert!(e.observe(2, &ev("a", "write", 2, "success", None), true).is_empty(), "learnt");
    // An alert's own event is not evaluated, even as a new action.
    let alert = Alert {
        rule: "new".into(),
        kind: "new_action",
        severity: "medium".into(),
        event_index: 2,
        subject: "a".into(),
        summary: "s".into(),
    };
    let mut body = alert.event();
    body["actor"] = json!({"id": "graven:server"});
    body["logged_at"] = json!("2026-12-07T00:00:09Z");
    assert_eq!(Alert::key_of_event(&body), Some(("new".to_owned(), 2)));
    assert!(e.observe(3, &serde_json::to_vec(&body).unwrap(), true).is_empty());
    assert!(e.observe(4, b"not json", true).is_empty());
}

#[test]
fn bad_rules_are_named_with_what_to_fix() {
    let cases: Vec<(RuleConfig, &str)> = vec![
        (rule("", "rate"), "printable ASCII"),
        (rule("x", "sometimes"), "use outside_allowed"),
        (rule("x", "rate"), "needs max"),
        (RuleConfig { max: Some(1), ..rule("x", "rate") }, "needs window_seconds"),
        (RuleConfig { max: Some(0), window_seconds: Some(1), ..rule("x", "rate") }, "from 1"),
        (RuleConfig { days: Some(0), ..rule("x", "dormant_active") }, "from 1 to 3650"),
        (rule("x", "dormant_active"), "needs days"),
        (rule("x", "outside_allowed"), "needs actions, hours or networks"),
        (RuleConfig { hours: Some("9-17".into()), ..rule("x", "outside_allowed") }, "HH:MM-HH:MM"),
        (RuleConfig { networks: vec!["10.0.0.0/33".into()], ..rule("x", "outside_allowed") }, "CIDR"),
        (RuleConfig { days: Some(3), ..rule("x", "new_action") }, "days has no meaning"),
        (
            RuleConfig {
                max: Some(1),
                window_seconds: Some(1),
                per: Some("ip".into()),
                ..rule("x", "denied_burst")
            },
            "use identity or source",
        ),
        (RuleConfig { severity: Some("urgent".into()), ..rule("x", "new_action") }, "severity"),
    ];
    for (c, says) in cases {
        let e = Rules::from_config(std::slice::from_ref(&c)).unwrap_err();
        assert!(e.0.contains(says), "{c:?}: {e}");
    }
    let e = Rules::from_config(&[rule("x", "new_action"), rule("x", "new_action")]).unwrap_err();
    assert!(e.0.contains("unique"));
}

#[test]
fn networks_match_by_prefix() {
    let n = Net::parse("10.0.0.0/8").unwrap();
    assert!(n.contains("10.255.0.1".parse().unwrap()) && !n.contains("11.0.0.1".parse().unwrap()));
    assert!(!n.contains("::ffff:10.0.0.1".parse().unwrap()), "no family mixing");
    let n = Net::parse("2001:db8::/32").unwrap();
    assert!(n.contains("2001:db8:1::1".parse().unwrap()) && !n.contains("2001:db9::1".parse().unwrap()));
    assert!(Net::parse("0.0.0.0/0").unwrap().contains("203.0.113.9".parse().unwrap()));
    assert!(Net::parse("192.0.2.1").unwrap().contains("192.0.2.1".parse().unwrap()));
}

proptest! {
    /// The rate rule against a simple reference: an alert exactly when more than `max` events
    /// of the actor fall within the window ending at this one, and none in the window after
    /// the last alert.
    #[test]
    fn rate_matches_a_reference(gaps in proptest::collection::vec(0i64..5, 1..80), max in 1u64..6, window in 1i64..12) {
        let mut r = rule("rate", "rate");
        (r.max, r.window_seconds) = (Some(max), Some(window as u64));
        let mut e = Evaluator::new(rules(vec![r]));
        let mut t = 0;
        let mut times: Vec<i64> = Vec::new();
        let mut quiet_until = i64::MIN;
        for (i, g) in gaps.iter().enumerate() {
            t += g;
            times.push(t);
            let got = !e.observe(i as u64, &ev("a", "x", t, "success", None), true).is_empty();
            let in_window = times.iter().filter(|&&s| t - s < window).count() as u64;
            let want = in_window > max && t >= quiet_until;
            if want {
                quiet_until = t + window;
            }
            prop_assert_eq!(got, want, "at {} ({:?})", t, times);
        }
    }

    /// Whatever the bytes, observing never panics.
    #[test]
    fn any_entry_is_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut r = rule("n", "new_action");
        r.min_events = Some(0);
        let mut e = Evaluator::new(rules(vec![r]));
        let _ = e.observe(0, &bytes, true);
    }
}
