//! Receipts and proofs: every receipt checks offline against the signed checkpoint it
//! carries; the proof endpoints agree with the checkpoint; the stored event is the leaf.

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::VerifierKey;
use graven_core::{Hash, LeafIndex, TreeSize, merkle};
use graven_server::testing::Harness;
use serde_json::Value;

/// Checks a receipt offline: the checkpoint it carries opens with the log key, and the
/// inclusion proof takes its leaf hash to that checkpoint's root.
pub fn check_receipt(vkey: &str, r: &Value) -> (u64, Hash) {
    let vkey = VerifierKey::parse(vkey).unwrap();
    let cp =
        VerifiedCheckpoint::open(r["checkpoint"].as_str().unwrap().as_bytes(), &vkey, vkey.name()).unwrap();
    assert_eq!(cp.size().0, r["tree_size"].as_u64().unwrap());
    let index = r["index"].as_u64().unwrap();
    let leaf = Hash::from_base64(r["leaf_hash"].as_str().unwrap()).unwrap();
    let proof: Vec<[u8; 32]> = r["inclusion_proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Hash::from_base64(p.as_str().unwrap()).unwrap().0)
        .collect();
    merkle::verify_inclusion(&leaf, LeafIndex(index), cp.size(), &proof, &cp.root()).unwrap();
    (index, leaf)
}

/// The bytes of event `index` as served, and their leaf hash (checked against the answer's).
fn stored_event(h: &Harness, index: u64) -> (String, Hash) {
    let a = h.check(h.get(format!("/v1/events/{index}")).bearer(h.token())).expect(200);
    #[derive(serde::Deserialize)]
    struct Stored<'a> {
        #[serde(borrow)]
        event: &'a serde_json::value::RawValue,
        leaf_hash: String,
    }
    let v: Stored = serde_json::from_slice(a.bytes()).unwrap();
    let bytes = v.event.get().to_owned();
    let leaf = graven_core::leaf_hash(bytes.as_bytes());
    assert_eq!(leaf.to_base64(), v.leaf_hash);
    assert_eq!(bytes.as_bytes(), h.entry(index), "served as stored");
    (bytes, leaf)
}

#[test]
fn receipts_and_proofs_verify_against_the_checkpoint() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let vkey = h.vkey();
    let b0 = h.size();
    assert_eq!(b0, 2, "the log starts with the server's own records of its bootstrap admin");
    let single = h.post("/v1/events").bearer(&t).json(
        r#"{"action":"deployment.create","resource":{"type":"k8s.deployment","id":"prod/payments"},"outcome":"success","actor":{"id":"root","kind":"human"},"details":{"replicas":3}}"#,
    );
    let single = h.check(single).expect(201);
    assert_eq!(single.header("location"), Some(format!("/v1/events/{b0}").as_str()));
    let receipt = single.json();
    let (i0, leaf0) = check_receipt(&vkey, &receipt);
    assert_eq!(i0, b0);

    let batch: String = (0..50)
        .map(|i| {
            format!("{{\"action\":\"secret.read\",\"resource\":{{\"type\":\"vault\",\"id\":\"kv/{i}\"}}}}\n")
        })
        .collect();
    let b = h.check(h.post("/v1/events").bearer(&t).ndjson(batch)).expect(201);
    assert!(b.content_type().starts_with("application/x-ndjson"));
    let receipts = b.lines();
    assert_eq!(receipts.len(), 50);
    for (k, r) in receipts.iter().enumerate() {
        let (i, leaf) = check_receipt(&vkey, r);
        assert_eq!(i, b0 + 1 + k as u64, "receipts come back in line order");
        assert_eq!(stored_event(&h, i).1, leaf);
    }

    // The stored event: attributed to the verified credential, the client's claim kept apart.
    let (text, leaf) = stored_event(&h, b0);
    assert_eq!(leaf, leaf0);
    let ev: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ev["actor"]["id"], "admin");
    assert_eq!(ev["actor"]["auth"], "api_key");
    assert_eq!(ev["claimed"]["actor"]["id"], "root");
    assert_eq!(ev["v"], 1);
    assert_eq!(ev["logged_at"], receipt["logged_at"]);
    assert_eq!(
        graven_core::jcs::canonicalize(text.as_bytes()).unwrap(),
        text.as_bytes(),
        "stored canonically"
    );

    // Proof endpoints agree with the checkpoint.
    let p = h.check(h.get("/v1/proofs/inclusion?index=7").bearer(&t)).expect(200).json();
    assert_eq!(p["tree_size"], b0 + 51);
    let c =
        h.check(h.get(format!("/v1/proofs/consistency?from=1&to={}", b0 + 51)).bearer(&t)).expect(200).json();
    let proof: Vec<[u8; 32]> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Hash::from_base64(x.as_str().unwrap()).unwrap().0)
        .collect();
    merkle::verify_consistency(
        TreeSize(1),
        TreeSize(b0 + 51),
        &Hash::from_base64(c["root_from"].as_str().unwrap()).unwrap(),
        &Hash::from_base64(c["root_to"].as_str().unwrap()).unwrap(),
        &proof,
    )
    .unwrap();
    // Outside the log, or not a number: a problem, not a proof.
    h.check(h.get(format!("/v1/proofs/inclusion?index={}", b0 + 51)).bearer(&t))
        .expect(400)
        .problem("bad-parameter");
    h.check(h.get("/v1/proofs/inclusion?index=x").bearer(&t)).expect(400).problem("bad-parameter");
    h.check(h.get(format!("/v1/events/{}", b0 + 51)).bearer(&t)).expect(404).problem("not-found");
}

#[test]
fn a_batch_asked_for_a_range_receipt_gets_one_proof_for_the_run() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let vkey = VerifierKey::parse(&h.vkey()).unwrap();
    let n = 300usize;
    let batch: String =
        (0..n).map(|i| format!("{{\"action\":\"batch.item\",\"request_id\":\"r{i}\"}}\n")).collect();
    let first = h.size();
    let a =
        h.check(h.post("/v1/events?receipt=range").bearer(&t).body("application/x-ndjson", batch.clone()));
    let a = a.expect(201);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let bytes_per_event = a.bytes().len() / n;
    let r = a.json();
    assert_eq!(r["first_index"].as_u64(), Some(first));
    let leaves: Vec<Hash> = r["leaf_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Hash::from_base64(x.as_str().unwrap()).unwrap())
        .collect();
    let proof: Vec<Hash> = r["range_proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Hash::from_base64(x.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(leaves.len(), n);
    assert!(proof.len() <= 2 * 64);
    let cp =
        VerifiedCheckpoint::open(r["checkpoint"].as_str().unwrap().as_bytes(), &vkey, vkey.name()).unwrap();
    assert_eq!(cp.size().0, r["tree_size"].as_u64().unwrap());
    graven_core::range_proof::verify_range(first, &leaves, cp.size(), &proof, &cp.root()).unwrap();
    // The leaf hashes are the stored events', in order.
    for i in [0, 1, n / 2, n - 1] {
        let (_, leaf) = stored_event(&h, first + i as u64);
        assert_eq!(leaves[i], leaf);
    }
    assert!(r["logged_at"].is_string());
    // The per-event answer for the same batch is some twenty times larger.
    let each = h.check(h.post("/v1/events").bearer(&t).body("application/x-ndjson", batch)).expect(201);
    assert!(each.bytes().len() / n > 10 * bytes_per_event, "{} vs {bytes_per_event}", each.bytes().len() / n);
    assert!(bytes_per_event <= 64, "{bytes_per_event} bytes per event");

    // Asked wrongly: a clear 400, nothing appended.
    let size = h.size();
    for (q, ctype, body) in [
        ("receipt=ranges", "application/x-ndjson", "{\"action\":\"a.b\"}\n"),
        ("receipt", "application/x-ndjson", "{\"action\":\"a.b\"}\n"),
        ("receipt=range", "application/json", "{\"action\":\"a.b\"}"),
        ("receipt=range&witnessed=true", "application/x-ndjson", "{\"action\":\"a.b\"}\n"),
    ] {
        let p = h.check(h.post(format!("/v1/events?{q}")).bearer(&t).body(ctype, body)).expect(400).json();
        assert!(p["detail"].as_str().unwrap().contains("receipt"), "{q}: {p}");
    }
    assert_eq!(h.size(), size);
}
