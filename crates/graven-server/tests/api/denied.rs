//! Refused requests leave `denied` records, bounded per client address and overall; what the
//! limiter drops is counted and summed up in the log, by address.

use std::net::Ipv4Addr;
use std::time::Instant;

use graven_server::testing::Harness;
use serde_json::Value;

use crate::util::post_event;

#[test]
fn denied_records_are_rate_limited() {
    let h = Harness::start();
    let bad = format!("gvn_{}_{}", "0".repeat(16), "B".repeat(43));
    let started = Instant::now();
    for _ in 0..40 {
        h.check(post_event(&h, &bad, r#"{"action":"flood"}"#)).expect(401);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let recorded = h.metric("graven_denied_records_total");
    let dropped = h.metric("graven_denied_records_dropped_total");
    assert_eq!(recorded + dropped, 40);
    // One source: a burst of 10, then 2 a second.
    assert!(recorded >= 10, "{recorded}");
    assert!(recorded as f64 <= 10.0 + 2.0 * elapsed + 1.0, "{recorded} recorded in {elapsed:.1} s");
    assert!(dropped > 0);
    // Besides the server's two records of its bootstrap admin.
    assert_eq!(h.size(), 2 + recorded, "only the recorded denials are in the log");
}

/// Review item 7: a flood of bad credentials from many addresses used up the one budget for
/// denied records, so a real brute force from one address left no trace. What the limiter drops
/// is summed up in the log, by address and reason, and the brute force tops that summary.
#[test]
fn a_brute_force_hidden_in_a_flood_still_shows_in_the_log() {
    let mut h = Harness::start();
    let size = h.size();
    let key = format!("gvn_{}_{}", "0123456789abcdef", "A".repeat(43));
    let bad_key_from = |ip: Ipv4Addr| h.check(h.get("/v1/log").bearer(&key).from(ip)).status();
    let attacker = Ipv4Addr::new(127, 0, 0, 200);
    for round in 0..6u8 {
        for n in 1..=60u8 {
            assert_eq!(bad_key_from(Ipv4Addr::new(127, 0, 1 + round % 2, n)), 401);
            if n % 3 == 0 {
                assert_eq!(bad_key_from(attacker), 401);
            }
        }
    }
    // A clean stop (SIGTERM) writes the summary of what was dropped since the last one.
    h.restart();
    let summaries = h.events_with_action(size, "graven.access.denied_summary");
    assert!(!summaries.is_empty(), "no summary of dropped denied records");
    let mut dropped = 0;
    let mut by_source = std::collections::BTreeMap::<String, u64>::new();
    for sum in &summaries {
        assert_eq!(sum["actor"]["id"], "graven:server", "{sum}");
        dropped += sum["details"]["dropped"].as_u64().unwrap();
        for x in sum["details"]["sources"].as_array().unwrap() {
            assert_eq!(x["reasons"]["invalid-credential"], x["dropped"], "{sum}");
            *by_source.entry(x["ip"].as_str().unwrap().to_owned()).or_default() +=
                x["dropped"].as_u64().unwrap();
        }
    }
    let attacker_drops = by_source["127.0.0.200"];
    let recorded = h.events_with_action(size, "graven.access.denied").len() as u64;
    // 480 refusals: each one either has its own record or is counted in a summary.
    assert_eq!(recorded + dropped, 480, "records {recorded}, dropped {dropped}");
    assert!(
        attacker_drops >= 100,
        "the brute force's 120 refusals are accounted for: {attacker_drops} dropped"
    );
    let last: &Value = summaries.last().unwrap();
    assert_eq!(
        last["details"]["sources"][0]["ip"], "127.0.0.200",
        "the brute force tops the summary: {last}"
    );
}
