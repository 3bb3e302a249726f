//! Identities and their API keys across restarts: a revoked or rotated-out bootstrap key never
//! comes back.

use graven_server::testing::{Harness, key_id};
use serde_json::Value;

/// Review item 3: a revoked (or rotated-out) bootstrap key came back as an active admin key on
/// restart, once 32 newer keys had pushed its record out, with no event in the log.
#[test]
fn a_revoked_or_rotated_out_bootstrap_key_never_comes_back() {
    for rotate in [false, true] {
        let mut h = Harness::start();
        let ops = h.identity("ops", "admin", &[]);
        let bootstrap = h.token().to_owned();
        if rotate {
            // Rotations with no overlap: each one ends the previous key at once.
            for _ in 0..33 {
                let r =
                    h.post("/v1/identities/admin/keys/rotate").bearer(&ops).json(r#"{"overlap_seconds":0}"#);
                h.check(r).expect(201);
            }
        } else {
            let revoke =
                h.post(format!("/v1/identities/admin/keys/{}/revoke", key_id(&bootstrap))).bearer(&ops);
            h.check(revoke.json("{}")).expect(200);
            for _ in 0..32 {
                h.check(h.post("/v1/identities/admin/keys").bearer(&ops).json(r#"{"ttl_seconds":1}"#))
                    .expect(201);
            }
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let tree_size =
            |h: &Harness| h.check(h.get("/v1/log").bearer(&ops)).expect(200).json()["tree_size"].clone();
        h.check(h.get("/v1/log").bearer(&bootstrap)).expect(401);
        let size = tree_size(&h);
        h.crash_restart();
        assert_eq!(tree_size(&h), size, "start-up changed nothing");
        h.check(h.get("/v1/log").bearer(&bootstrap)).expect(401);
        let banner = h.banner();
        assert!(
            banner.iter().any(|l| l.contains("admin.token") && l.contains("does not work")),
            "{banner:?}"
        );
        // Start-up's own registry change is in the log, attributed to the server.
        let first: Vec<Value> = (0..2)
            .map(|i| {
                h.check(h.get(format!("/v1/events/{i}")).bearer(&ops)).expect(200).json()["event"].clone()
            })
            .collect();
        assert_eq!(first[0]["action"], "graven.identity.create", "{}", first[0]);
        assert_eq!(first[0]["resource"]["id"], "admin");
        assert_eq!(first[0]["details"]["role"], "admin");
        assert_eq!(first[1]["action"], "graven.key.create", "{}", first[1]);
        assert_eq!(first[1]["details"]["key_id"], key_id(&bootstrap));
        for e in &first {
            assert_eq!(e["actor"]["id"], "graven:server", "{e}");
        }

        // Deleting the token file does not mint a new admin key either.
        let size = tree_size(&h);
        h.crash_restart_with(|_, data| std::fs::remove_file(data.join("admin.token")).unwrap());
        assert!(!h.data().join("admin.token").exists());
        assert_eq!(h.token(), "");
        assert_eq!(tree_size(&h), size);
    }
}

/// Found by schemathesis: the identity routes read a JSON array as their object (serde takes a
/// struct from a sequence), so `[null, null]` made a new API key and `["svc:x","bot","me"]` an
/// identity. A body is a JSON object, or nothing.
#[test]
fn an_identity_request_body_that_is_not_an_object_is_refused() {
    let h = Harness::start();
    let t = h.token().to_owned();
    h.check(h.post("/v1/identities").bearer(&t).json(r#"{"id":"svc:arr","kind":"bot","owner":"me"}"#))
        .expect(201);
    let before = h.size();
    for (path, body) in [
        ("/v1/identities", r#"["svc:x","bot","me"]"#),
        ("/v1/identities/svc:arr/keys", "[null, null]"),
        ("/v1/identities/svc:arr/keys/rotate", "[]"),
        ("/v1/identities/svc:arr/disable", r#"["why"]"#),
        ("/v1/identities/svc:arr/public-keys", r#"["AAAA"]"#),
        ("/v1/identities/svc:arr/keys", "7"),
        ("/v1/identities/svc:arr/keys", "null"),
    ] {
        let a = h.check(h.post(path).bearer(&t).json(body)).expect(400);
        let p = a.problem("invalid-request");
        assert!(p["detail"].as_str().unwrap_or_default().contains("JSON object"), "{path} {body}: {p}");
    }
    assert_eq!(h.size(), before, "a refused change was recorded");
    // An empty body is still an empty object.
    h.check(h.post("/v1/identities/svc:arr/keys").bearer(&t).body("application/json", Vec::new()))
        .expect(201);
}
