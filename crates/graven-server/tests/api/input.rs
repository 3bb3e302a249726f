//! Bad input is refused with a problem that says what to fix, and harms nothing: body limits,
//! malformed and invalid events, content types, a full pool, bodies and headers that never
//! finish (over a connection served by the accept loop's own code).

use std::time::{Duration, Instant};

use graven_server::testing::{Answer, Harness};

#[track_caller]
fn problem(a: Answer, status: u16, needle: &str) -> Answer {
    let a = a.expect(status);
    let detail = a.detail();
    assert!(detail.contains(needle), "{detail:?} should mention {needle:?}");
    a
}

#[test]
fn bad_input_is_refused_and_harms_nothing() {
    let h = Harness::builder()
        .config("body_timeout_ms = 700\nheader_timeout_ms = 700\nmax_body_bytes = 200000")
        .overrides(|o| o.max_pending_events = Some(100))
        .start();
    let t = h.token().to_owned();
    let post = |ctype: &str, body: &[u8]| h.check(h.post("/v1/events").bearer(&t).body(ctype, body.to_vec()));
    post("application/json", br#"{"action":"first"}"#).expect(201);

    let big = format!("{{\"action\":\"x\",\"details\":\"{}\"}}", "a".repeat(70_000));
    problem(post("application/json", big.as_bytes()), 413, "65535");
    problem(post("application/json", &vec![b' '; 200_001]), 413, "200000-byte limit");
    problem(post("application/json", b"{\"action\":"), 400, "nothing was appended");
    problem(post("application/json", br#"{"action":"x","n":1e400}"#), 400, "nothing was appended");
    problem(post("application/json", br#"{"action":"x","n":9007199254740993}"#), 400, "2^53");
    problem(post("application/json", br#"{"resource":{"id":"x"}}"#), 400, "action");
    problem(post("application/json", br#"{"action":"x","resource":{"type":7}}"#), 400, "resource.type");
    problem(post("application/json", br#"{"action":"x","colour":"red"}"#), 400, "colour");
    problem(post("application/json", br#"{"action":"x","a":1,"a":2}"#), 400, "duplicate");
    problem(post("application/json", &[b'{', b'"', 0xff, b'"', b':', b'1', b'}']), 400, "UTF-8");
    let deep = format!("{{\"action\":\"x\",\"details\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    problem(post("application/json", deep.as_bytes()), 400, "deep");
    problem(post("text/plain", br#"{"action":"x"}"#), 415, "application/json");
    problem(h.check(h.post("/v1/events").json(r#"{"action":"x"}"#)), 401, "Bearer");
    let wrong =
        h.post("/v1/events").bearer("gvn_wrong_token_wrong_token_wrong_token").json(r#"{"action":"x"}"#);
    problem(h.check(wrong), 401, "not valid");
    let mixed = "{\"action\":\"a\"}\n{\"action\":\"b\"}\n{\"action\":}\n";
    problem(post("application/x-ndjson", mixed.as_bytes()), 400, "line 3");
    let too_many: String = (0..101).map(|_| "{\"action\":\"a\"}\n").collect();
    let r = problem(post("application/x-ndjson", too_many.as_bytes()), 503, "pool is full");
    assert_eq!(r.header("retry-after"), Some("1"));

    // A body that stops arriving: 408, and the connection is closed.
    let mut slow = h.connect();
    slow.write(
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"action\":"
        )
        .as_bytes(),
    );
    let (answer, closed) = slow.read_to_end(Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408") && closed, "{answer}");
    // One cut off midway: the connection closes halfway through the body.
    let mut cut = h.connect();
    cut.write(
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{{\"action\":\"a\"}}\n{{\"action\":\"b\"}}\n"
        )
        .as_bytes(),
    );
    drop(cut);

    // Headers that never finish: the connection is closed, not held.
    let mut dribble = h.connect();
    dribble.write(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n");
    let started = Instant::now();
    let (_, closed) = dribble.read_to_end(Duration::from_secs(10));
    assert!(closed && started.elapsed() < Duration::from_secs(5), "slow headers kept the connection open");

    std::thread::sleep(Duration::from_millis(300));
    // Only the record of the refused wrong token was appended: by the server, outcome denied.
    // (After the server's two records of its bootstrap admin, and "first".)
    assert_eq!(h.size(), 4, "a failed request appended something");
    let denied = h.event(3);
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["action"], "graven.access.denied");
    assert_eq!(denied["actor"]["id"], "graven:server");
    assert_eq!(h.verify_over_http(Some(&t)).unwrap().tree_size, 4);
    post("application/json", br#"{"action":"after"}"#).expect(201);
}

/// Found by schemathesis: an index or size past 2^64 - 1 is a non-negative integer, and the
/// problem said it was not one. It now says what range is taken.
#[test]
fn an_index_too_large_for_the_log_is_refused_with_the_range() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let huge = "36893488147419103232"; // 2^65
    for path in [
        format!("/v1/events/{huge}"),
        format!("/v1/proofs/inclusion?index={huge}"),
        format!("/v1/proofs/consistency?from=1&to={huge}"),
        format!("/v1/timestamps?after={huge}"),
    ] {
        let a = problem(h.check(h.get(&path).bearer(&t)), 400, "from 0 to 18446744073709551615");
        assert!(a.detail().contains(huge), "{}", a.detail());
    }
    problem(h.check(h.get("/v1/events/-3").bearer(&t)), 400, "from 0 to 18446744073709551615");
}
