//! Client-signed event verification throughput on one core: single `verify_strict` against
//! ed25519-dalek batch verification, over NDJSON-sized batches of realistic events.
//!
//! `cargo run --release -p graven-core --example sigbatch [events] [batch]`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // a benchmark reads the clock; the library never does

use std::time::Instant;

use ed25519_dalek::{Signature, SigningKey};
use graven_core::event_sig;
use graven_core::jcs::{self, Value};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(20_000, |a| a.parse().unwrap());
    let batch: usize = args.next().map_or(1_000, |a| a.parse().unwrap());
    let key = SigningKey::from_bytes(&[5u8; 32]);
    let vk = key.verifying_key();
    let mut msgs = Vec::with_capacity(n);
    let mut sigs = Vec::with_capacity(n);
    for i in 0..n {
        let ev = format!(
            r#"{{"action":"deployment.create","resource":{{"type":"k8s.deployment","id":"prod/payments-{i}"}},"outcome":"success","details":{{"replicas":3,"image":"registry.example/payments:1.4.{i}"}}}}"#
        );
        let signed = event_sig::sign_event(&key, ev.as_bytes()).unwrap();
        let Value::Object(m) = jcs::parse(&signed).unwrap() else { unreachable!() };
        let c =
            event_sig::parse_client_signature(&m.iter().find(|(k, _)| k == "client_signature").unwrap().1)
                .unwrap();
        msgs.push(event_sig::message(&m));
        sigs.push(Signature::from_bytes(&c.sig));
    }
    let t = Instant::now();
    for (m, s) in msgs.iter().zip(&sigs) {
        vk.verify_strict(m, s).unwrap();
    }
    let single = n as f64 / t.elapsed().as_secs_f64();
    let keys = vec![vk; batch];
    let t = Instant::now();
    for (m, s) in msgs.chunks(batch).zip(sigs.chunks(batch)) {
        let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
        ed25519_dalek::verify_batch(&refs, s, &keys[..refs.len()]).unwrap();
    }
    let batched = n as f64 / t.elapsed().as_secs_f64();
    println!("events: {n}, batch size: {batch}, one core");
    println!("single verify_strict: {single:.0} events/s");
    println!("verify_batch:         {batched:.0} events/s ({:.2}x)", batched / single);
}
