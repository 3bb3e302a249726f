//! C2SP `tlog-policy` files (`graven_core::policy::Policy::parse`) and the checkpoints they
//! judge (`Policy::verify`, what `graven verify --policy` relies on).
//!
//! The first byte chooses a mode.
//!
//! Text (any first byte but `0xff`; the whole input is the policy file):
//! - `Policy::parse` never panics, with or without `note_signature_witnesses`.
//! - The opt-in only widens: a file that parses without it parses with it, to the same policy.
//! - Spacing and comments carry no meaning: the file with every space made a tab, each line
//!   indented and followed by trailing blanks and a comment line, parses to the same policy, or
//!   fails as the original does (when it stays under the size limit).
//! - Quorums are monotone and bounded: with every witness cosigning the quorum holds; with none
//!   it holds only for `quorum none` (then always); adding one cosigner to any set never breaks a
//!   quorum that held (sets drawn from the input's hash).
//!
//! Structured (first byte `0xff`): the next bytes choose which of four `cosignature/v1`
//! witnesses and one plain Ed25519 note-key witness a policy lists, whether plain note keys are
//! admitted, a quorum (`none`, one witness, `k` of the listed, or `any` of one half and `all` of
//! the other), which witnesses sign a checkpoint of a fixed log and which of those lines are
//! damaged. `Policy::parse` refuses the plain witness exactly when it is not admitted;
//! `Policy::verify` refuses exactly when a listed witness's line is damaged or the quorum, as a
//! reference evaluation computes it, is not met; otherwise it names exactly the listed witnesses
//! with valid lines, with their timestamps (none for the plain one).
#![no_main]

use std::sync::LazyLock;

use graven_core::checkpoint::Checkpoint;
use graven_core::cosignature::Cosigner;
use graven_core::hash::{Hash, TreeSize};
use graven_core::note::SignerKey;
use graven_core::policy::{MAX_POLICY_SIZE, ParseOptions, Policy, PolicyCheckError};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "fuzz.example/log";
const T0: u64 = 1_700_000_000;

struct Keys {
    log: SignerKey,
    cosigners: Vec<Cosigner>,
    plain: SignerKey,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    log: SignerKey::from_seed(ORIGIN, [1; 32]).expect("log key"),
    cosigners: (0..4u8)
        .map(|i| Cosigner::from_seed(&format!("w{i}.example"), [10 + i; 32]).expect("witness key"))
        .collect(),
    plain: SignerKey::from_seed("plain.example", [20; 32]).expect("plain key"),
});

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&0xff, rest)) => structured(rest),
        _ => text(data),
    }
});

fn text(data: &[u8]) {
    let strict = Policy::parse(data, ParseOptions::default());
    let wide = Policy::parse(data, ParseOptions { note_signature_witnesses: true });
    if let Ok(p) = &strict {
        assert_eq!(wide.as_ref().ok(), Some(p), "the opt-in narrowed what parses");
    }
    let mut respaced = Vec::with_capacity(data.len() * 2);
    for line in data.split(|&b| b == b'\n') {
        respaced.extend_from_slice(b" \t");
        respaced.extend(line.iter().map(|&b| if b == b' ' { b'\t' } else { b }));
        respaced.extend_from_slice(b"\t \n   # a comment\n");
    }
    if respaced.len() <= MAX_POLICY_SIZE {
        let again = Policy::parse(&respaced, ParseOptions::default());
        assert_eq!(again.as_ref().ok(), strict.as_ref().ok(), "spacing or comments changed the policy");
    }
    if let Ok(p) = wide {
        quorum_laws(&p, data);
    }
}

fn quorum_laws(p: &Policy, data: &[u8]) {
    let n = p.witnesses().len();
    let none_needed = p.quorum_met(&vec![false; n]);
    assert!(p.quorum_met(&vec![true; n]), "every witness cosigned, and the quorum is not met");
    // Monotone: some subsets drawn from the input, each with one more witness.
    let mut seed = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    for _ in 0..8 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let flags: Vec<bool> = (0..n).map(|i| (seed >> (i % 64)) & 1 == 1).collect();
        if n == 0 {
            break;
        }
        let mut more = flags.clone();
        more[(seed >> 32) as usize % n] = true;
        if p.quorum_met(&flags) {
            assert!(p.quorum_met(&more), "one more cosigner broke the quorum");
        }
        // A quorum met by nobody is `quorum none`, which any set meets.
        if none_needed {
            assert!(p.quorum_met(&flags));
        }
    }
}

/// The quorum forms of the structured mode.
#[derive(Debug, Clone, Copy)]
enum Form {
    None,
    One,
    KOf(usize),
    AnyAndAll,
}

fn structured(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let k = &*KEYS;
    let admit = byte(0) & 1 == 1;
    // Listed witnesses: 0..4 the cosigners, 4 the plain note key.
    let listed: Vec<usize> = (0..5).filter(|i| byte(0) >> (i + 1) & 1 == 1).collect();
    let form = match byte(1) % 4 {
        0 => Form::None,
        1 => Form::One,
        2 => Form::KOf(usize::from(byte(2))),
        _ => Form::AnyAndAll,
    };
    let signs = |i: usize| byte(3) >> i & 1 == 1;
    let damaged = |i: usize| byte(4) >> i & 1 == 1;

    let name = |i: usize| format!("W{i}");
    let mut policy = format!("log {}\n", k.log.verifier());
    for &i in &listed {
        let key = if i < 4 { k.cosigners[i].verifier().to_string() } else { k.plain.verifier().to_string() };
        policy += &format!("witness {} {key}\n", name(i));
    }
    let (first, second) = listed.split_at(listed.len() / 2);
    let quorum: Box<dyn Fn(&dyn Fn(usize) -> bool) -> bool> = match form {
        Form::None => {
            policy += "quorum none\n";
            Box::new(|_| true)
        }
        Form::One if !listed.is_empty() => {
            policy += &format!("quorum {}\n", name(listed[0]));
            let w = listed[0];
            Box::new(move |ok| ok(w))
        }
        Form::KOf(t) if !listed.is_empty() => {
            let t = 1 + t % listed.len();
            let names: Vec<String> = listed.iter().map(|&i| name(i)).collect();
            policy += &format!("group G {t} {}\nquorum G\n", names.join(" "));
            let members = listed.clone();
            Box::new(move |ok| members.iter().filter(|&&i| ok(i)).count() >= t)
        }
        Form::AnyAndAll if !first.is_empty() && !second.is_empty() => {
            let a: Vec<String> = first.iter().map(|&i| name(i)).collect();
            let b: Vec<String> = second.iter().map(|&i| name(i)).collect();
            policy += &format!("group A any {}\ngroup B all {}\ngroup Q all A B\nquorum Q\n", a.join(" "), b.join(" "));
            let (a, b) = (first.to_vec(), second.to_vec());
            Box::new(move |ok| a.iter().any(|&i| ok(i)) && b.iter().all(|&i| ok(i)))
        }
        _ => {
            policy += "quorum none\n";
            Box::new(|_| true)
        }
    };
    let parsed = Policy::parse(policy.as_bytes(), ParseOptions { note_signature_witnesses: admit });
    let plain_listed = listed.contains(&4);
    let p = match parsed {
        Ok(p) => {
            assert!(admit || !plain_listed, "a plain note key was admitted as a witness by default");
            p
        }
        Err(e) => {
            assert!(plain_listed && !admit, "a valid policy was refused: {e}\n{policy}");
            return;
        }
    };

    let body = Checkpoint::new(ORIGIN, TreeSize(u64::from(byte(5)) + 1), Hash([byte(6); 32]))
        .expect("checkpoint")
        .to_text();
    let mut note = k.log.sign(&body).expect("log signature");
    for i in (0..5).filter(|&i| signs(i)) {
        let line = if i < 4 {
            k.cosigners[i].cosign(&body, T0 + i as u64).expect("cosign")
        } else {
            k.plain.signature_line(body.as_bytes())
        };
        note += &if damaged(i) { damage(&line) } else { line };
    }
    let valid = |i: usize| listed.contains(&i) && signs(i) && !damaged(i);
    let bad_line = listed.iter().any(|&i| signs(i) && damaged(i));
    match p.verify(note.as_bytes()) {
        Ok(w) => {
            assert!(!bad_line && quorum(&valid), "accepted against the reference\n{policy}");
            let expected: Vec<(String, Option<u64>)> = listed
                .iter()
                .filter(|&&i| valid(i))
                .map(|&i| (name(i), (i < 4).then_some(T0 + i as u64)))
                .collect();
            assert_eq!(w.cosigned(), expected.as_slice());
        }
        Err(PolicyCheckError::BadCosignature { witness, .. }) => {
            assert!(bad_line, "a valid line was called bad ({witness})");
        }
        Err(PolicyCheckError::Quorum { cosigned, missing }) => {
            assert!(!bad_line && !quorum(&valid), "refused against the reference\n{policy}");
            assert_eq!(cosigned.len() + missing.len(), listed.len());
        }
        Err(e) => panic!("unexpected refusal: {e}"),
    }
}

/// The same name and key ID, a signature that cannot verify: the last signature byte changed.
fn damage(line: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    let (head, sig) = line.trim_end().rsplit_once(' ').expect("a signature line");
    let mut raw = B64.decode(sig).expect("base64");
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    format!("{head} {}\n", B64.encode(raw))
}
