//! A real TSA for tests (of graven-tsa, the server and the verifier):
//! OpenSSL's `openssl ts -reply` behind a small HTTP handler on a free loopback port, with a
//! test PKI made here by `openssl` commands.
//!
//! Needs the `openssl` command-line tool; without it every test fails (never skips) and says so.
//! Tests fail loudly by design: this module panics on any error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The TSA's default policy in the `openssl ts` configurations below, and one more it accepts.
pub const DEFAULT_POLICY: &str = "1.3.6.1.4.1.99999.1";
pub const OTHER_POLICY: &str = "1.3.6.1.4.1.99999.2";

/// Runs `openssl` with `args` in `dir`; panics with its output if it fails.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `openssl` ({e}): the trusted-time tests need OpenSSL's command-line tool \
             (Debian: apt-get install openssl)"
        )
    });
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Issued {
    pub fn pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert).unwrap()
    }
}

/// A running TSA: the URL of its HTTP handler and what it signs with.
#[derive(Debug, Clone)]
pub struct Tsa {
    pub url: String,
    pub signer: Issued,
    /// `openssl ts` configuration file and section.
    pub config: PathBuf,
}

/// The test PKI and the TSAs, made once per test process.
#[derive(Debug)]
pub struct Pki {
    pub dir: PathBuf,
    /// The configured root (`tsa_cert`): RSA 2048, "CN=Graven Test Root".
    pub root: Issued,
    /// An intermediate CA under the root (P-384).
    pub intermediate: Issued,
    /// RSA 2048 TSA, directly under the root; SHA-256; ESSCertID (SHA-1); whole seconds.
    pub rsa: Tsa,
    /// P-256 TSA under the intermediate (sent in the token); signs with SHA-384; ESSCertIDv2
    /// (SHA-256, the default algorithm, left out); genTime in milliseconds.
    pub ec: Tsa,
    /// P-384 TSA directly under the root; signs with SHA-256; ESSCertIDv2 with SHA-384.
    pub p384: Tsa,
    /// A P-256 TSA under another root that has the same name as the configured one.
    pub rogue: Tsa,
    pub rogue_root: Issued,
    /// A TSA whose certificate (under the intermediate) expired in 2021.
    pub expired: Tsa,
    /// Certificates for the EC TSA's key and name, issued by the intermediate, that RFC 3161
    /// §2.3 forbids: no extended key usage; timeStamping not critical; timeStamping and
    /// another purpose.
    pub no_eku: Issued,
    pub eku_not_critical: Issued,
    pub eku_two_purposes: Issued,
}

static PKI: OnceLock<Pki> = OnceLock::new();

pub fn pki() -> &'static Pki {
    PKI.get_or_init(Pki::make)
}

/// Distinct file names for concurrent tests.
pub fn unique(dir: &Path, stem: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    dir.join(format!("{stem}-{}", N.fetch_add(1, Ordering::Relaxed)))
}

const REQ_CONFIG: &str = "[ req ]\ndistinguished_name = dn\nprompt = no\n[ dn ]\nCN = unused\n";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

impl Pki {
    fn make() -> Pki {
        let dir = scratch_dir();
        let d = dir.as_path();
        write(&d.join("req.cnf"), REQ_CONFIG);
        let key = |name: &str, alg: &[&str]| -> PathBuf {
            let path = d.join(format!("{name}.key"));
            let mut args = vec!["genpkey", "-out", s(&path)];
            args.extend_from_slice(alg);
            openssl(d, &args);
            path
        };
        let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        let p256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        let p384 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];

        let root = self_signed(d, "root", key("root", &rsa), "/CN=Graven Test Root/O=Graven tests");
        let rogue_root =
            self_signed(d, "rogue-root", key("rogue-root", &p256), "/CN=Graven Test Root/O=Graven tests");
        let ca_ext = "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
                      subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";
        let intermediate = issue(
            d,
            "intermediate",
            key("intermediate", &p384),
            "/CN=Graven Test Intermediate",
            &root,
            ca_ext,
            1,
        );

        let tsa_ext = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                       extendedKeyUsage=critical,timeStamping\nsubjectKeyIdentifier=hash\n\
                       authorityKeyIdentifier=keyid\n";
        let rsa_tsa =
            issue(d, "tsa-rsa", key("tsa-rsa", &rsa), "/CN=Graven Test TSA RSA", &root, tsa_ext, 10);
        let ec_key = key("tsa-ec", &p256);
        let ec_subject = "/CN=Graven Test TSA EC";
        let ec_tsa = issue(d, "tsa-ec", ec_key.clone(), ec_subject, &intermediate, tsa_ext, 11);
        let p384_tsa =
            issue(d, "tsa-p384", key("tsa-p384", &p384), "/CN=Graven Test TSA P-384", &root, tsa_ext, 12);
        let rogue_tsa = issue(
            d,
            "tsa-rogue",
            key("tsa-rogue", &p256),
            "/CN=Graven Test TSA Rogue",
            &rogue_root,
            tsa_ext,
            13,
        );
        let expired_cert = issue_dated(d, "tsa-expired", &ec_key, ec_subject, &intermediate, tsa_ext);

        let no_eku = issue(
            d,
            "no-eku",
            ec_key.clone(),
            ec_subject,
            &intermediate,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
            20,
        );
        let eku_not_critical = issue(
            d,
            "eku-not-critical",
            ec_key.clone(),
            ec_subject,
            &intermediate,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=timeStamping\n",
            21,
        );
        let eku_two_purposes = issue(
            d,
            "eku-two",
            ec_key.clone(),
            ec_subject,
            &intermediate,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=critical,timeStamping,codeSigning\n",
            22,
        );

        let tsa =
            |name: &str, signer: Issued, chain: Option<&Issued>, digest: &str, ess: &str, precision: u32| {
                let config = ts_config(d, name, &signer, chain, digest, ess, precision);
                let url = serve_openssl_tsa(d.to_path_buf(), config.clone());
                Tsa { url, signer, config }
            };
        Pki {
            rsa: tsa("rsa", rsa_tsa, None, "sha256", "sha1", 0),
            ec: tsa("ec", ec_tsa, Some(&intermediate), "sha384", "sha256", 3),
            p384: tsa("p384", p384_tsa, None, "sha256", "sha384", 0),
            rogue: tsa("rogue", rogue_tsa, Some(&rogue_root), "sha256", "sha256", 0),
            expired: tsa("expired", expired_cert, Some(&intermediate), "sha256", "sha256", 0),
            dir,
            root,
            rogue_root,
            intermediate,
            no_eku,
            eku_not_critical,
            eku_two_purposes,
        }
    }
}

/// A fresh directory under the system's temporary directory for this process; those of
/// earlier runs whose process is gone are removed.
fn scratch_dir() -> PathBuf {
    let base = std::env::temp_dir().join("graven-tsa-tests");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok();
            if pid.is_some_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn self_signed(d: &Path, name: &str, key: PathBuf, subject: &str) -> Issued {
    let cert = d.join(format!("{name}.pem"));
    openssl(
        d,
        &[
            "req",
            "-config",
            "req.cnf",
            "-new",
            "-x509",
            "-key",
            s(&key),
            "-out",
            s(&cert),
            "-subj",
            subject,
            "-days",
            "3650",
            "-sha256",
            "-set_serial",
            "1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
    );
    Issued { cert, key }
}

fn csr(d: &Path, name: &str, key: &Path, subject: &str) -> PathBuf {
    let csr = d.join(format!("{name}.csr"));
    openssl(d, &["req", "-config", "req.cnf", "-new", "-key", s(key), "-subj", subject, "-out", s(&csr)]);
    csr
}

fn issue(
    d: &Path,
    name: &str,
    key: PathBuf,
    subject: &str,
    issuer: &Issued,
    ext: &str,
    serial: u32,
) -> Issued {
    let csr = csr(d, name, &key, subject);
    let ext_file = d.join(format!("{name}.ext"));
    write(&ext_file, ext);
    let cert = d.join(format!("{name}.pem"));
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&issuer.cert),
            "-CAkey",
            s(&issuer.key),
            "-set_serial",
            &serial.to_string(),
            "-days",
            "365",
            "-sha256",
            "-extfile",
            s(&ext_file),
            "-out",
            s(&cert),
        ],
    );
    Issued { cert, key }
}

/// A certificate valid only in 2020 (`openssl ca` is the tool of OpenSSL 3.0 that sets dates).
fn issue_dated(d: &Path, name: &str, key: &Path, subject: &str, issuer: &Issued, ext: &str) -> Issued {
    let csr = csr(d, name, key, subject);
    let ca = d.join(format!("{name}-ca"));
    std::fs::create_dir_all(ca.join("new")).unwrap();
    write(&ca.join("index.txt"), "");
    write(&ca.join("serial"), "30\n");
    let config = ca.join("ca.cnf");
    write(
        &config,
        &format!(
            "[ ca ]\ndefault_ca = ca_section\n[ ca_section ]\ndatabase = {db}\nnew_certs_dir = {new}\n\
         serial = {serial}\ndefault_md = sha256\npolicy = any\nunique_subject = no\n[ any ]\n\
         commonName = supplied\n[ ext ]\n{ext}",
            db = s(&ca.join("index.txt")),
            new = s(&ca.join("new")),
            serial = s(&ca.join("serial")),
        ),
    );
    let cert = d.join(format!("{name}.pem"));
    openssl(
        d,
        &[
            "ca",
            "-batch",
            "-config",
            s(&config),
            "-cert",
            s(&issuer.cert),
            "-keyfile",
            s(&issuer.key),
            "-in",
            s(&csr),
            "-out",
            s(&cert),
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
            "-extensions",
            "ext",
            "-notext",
        ],
    );
    Issued { cert, key: key.to_path_buf() }
}

/// An `openssl ts` configuration (see `man openssl-ts`, "Configuration file options").
fn ts_config(
    d: &Path,
    name: &str,
    signer: &Issued,
    chain: Option<&Issued>,
    digest: &str,
    ess: &str,
    precision: u32,
) -> PathBuf {
    let serial = d.join(format!("ts-{name}.serial"));
    write(&serial, "01\n");
    let certs = chain.map(|c| format!("certs = {}\n", s(&c.cert))).unwrap_or_default();
    let config = d.join(format!("ts-{name}.cnf"));
    write(
        &config,
        &format!(
            "[ tsa ]\ndefault_tsa = tsa_config\n[ tsa_config ]\nserial = {serial}\ncrypto_device = builtin\n\
         signer_cert = {cert}\n{certs}signer_key = {key}\nsigner_digest = {digest}\n\
         default_policy = {DEFAULT_POLICY}\nother_policies = {OTHER_POLICY}\ndigests = sha256, sha384, sha512\n\
         accuracy = secs:1, millisecs:500, microsecs:100\nclock_precision_digits = {precision}\n\
         ordering = yes\ntsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = {ess}\n",
            serial = s(&serial),
            cert = s(&signer.cert),
            key = s(&signer.key),
        ),
    );
    config
}

/// Answers `openssl ts -reply` for `query` (the request's DER) with the configuration `config`.
pub fn openssl_reply(dir: &Path, config: &Path, query: &[u8]) -> Vec<u8> {
    let q = unique(dir, "query");
    let r = unique(dir, "reply");
    std::fs::write(&q, query).unwrap();
    openssl(dir, &["ts", "-reply", "-config", s(config), "-queryfile", s(&q), "-out", s(&r)]);
    let reply = std::fs::read(&r).unwrap();
    let _ = std::fs::remove_file(q);
    let _ = std::fs::remove_file(r);
    reply
}

/// What a handler answers: status, Content-Type, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Serves `handler` on a free loopback port (`crate::net::serve`): it gets the body
/// of each request, which must carry a Content-Length of at most 1 MiB (else 400). One
/// request at a time: `openssl ts -reply` keeps its serial number in a file, and two replies
/// made at once would race on it.
pub fn serve(handler: impl Fn(&[u8]) -> Answer + Send + 'static) -> String {
    let handler = std::sync::Mutex::new(handler);
    let server = crate::net::serve(move |req| {
        let length = req.header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
        let answer = match length {
            Some(l) if l <= 1 << 20 => (handler.lock().unwrap_or_else(|p| p.into_inner()))(&req.body),
            _ => Answer {
                status: 400,
                content_type: "text/plain".into(),
                body: b"no usable Content-Length".to_vec(),
            },
        };
        crate::net::Response::status(answer.status)
            .header("Content-Type", &answer.content_type)
            .body(answer.body)
    });
    format!("{}/tsa", server.url())
}

/// An HTTP TSA: each request answered by `openssl ts -reply` with `config`.
fn serve_openssl_tsa(dir: PathBuf, config: PathBuf) -> String {
    serve(move |query| Answer {
        status: 200,
        content_type: "application/timestamp-reply".into(),
        body: openssl_reply(&dir, &config, query),
    })
}

/// The TSTInfo inside a token (OpenSSL checks the signature, not the certificate).
pub fn tst_info_of(dir: &Path, token: &[u8]) -> Vec<u8> {
    let t = unique(dir, "token");
    let out = unique(dir, "tstinfo");
    std::fs::write(&t, token).unwrap();
    openssl(
        dir,
        &["cms", "-verify", "-noverify", "-inform", "DER", "-in", s(&t), "-binary", "-out", s(&out)],
    );
    std::fs::read(&out).unwrap()
}

/// A token made with `openssl cms -sign` around `tst_info`, signed by `signer` and carrying
/// `extra` certificates: the same structure as a TSA's (ESS signingCertificateV2 from
/// `-cades`), for certificates `openssl ts` refuses to sign with.
pub fn cms_token(dir: &Path, tst_info: &[u8], signer: &Issued, extra: &[&Issued]) -> Vec<u8> {
    cms_token_with(dir, tst_info, signer, extra, true)
}

/// [`cms_token`], with or without the ESS signing-certificate attribute (`-cades`).
pub fn cms_token_with(
    dir: &Path,
    tst_info: &[u8],
    signer: &Issued,
    extra: &[&Issued],
    cades: bool,
) -> Vec<u8> {
    let input = unique(dir, "tstinfo");
    let out = unique(dir, "cms-token");
    std::fs::write(&input, tst_info).unwrap();
    let mut args = vec![
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-econtent_type",
        "1.2.840.113549.1.9.16.1.4",
        "-nosmimecap",
        "-md",
        "sha256",
        "-signer",
        s(&signer.cert),
        "-inkey",
        s(&signer.key),
        "-in",
        s(&input),
        "-outform",
        "DER",
        "-out",
        s(&out),
    ];
    if cades {
        args.push("-cades");
    }
    let bundle = unique(dir, "certs");
    if !extra.is_empty() {
        let pems: Vec<u8> = extra.iter().flat_map(|c| c.pem()).collect();
        std::fs::write(&bundle, pems).unwrap();
        args.extend_from_slice(&["-certfile", s(&bundle)]);
    }
    openssl(dir, &args);
    std::fs::read(&out).unwrap()
}

/// `token` (whole-second genTime, as the RSA TSA writes it) with its genTime replaced by
/// `gen_time` (`YYYYMMDDhhmmssZ`) and signed again by `signer` (with `extra` certificates): a
/// token the holder of that TSA key could have made at another time, to build tokens that
/// break the ordering rule on purpose.
pub fn redated(dir: &Path, token: &[u8], signer: &Issued, extra: &[&Issued], gen_time: &str) -> Vec<u8> {
    assert!(gen_time.len() == 15 && gen_time.ends_with('Z'), "genTime as YYYYMMDDhhmmssZ: {gen_time}");
    let mut tst = tst_info_of(dir, token);
    let at = find_once(&tst, &[0x18, 0x0f, b'2', b'0']) + 2;
    tst[at..at + 15].copy_from_slice(gen_time.as_bytes());
    cms_token(dir, &tst, signer, extra)
}

/// Where `needle` starts in `haystack` (it must occur exactly once).
pub fn find_once(haystack: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> =
        haystack.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect();
    assert_eq!(hits.len(), 1, "expected {needle:02x?} once in the token, found it {} times", hits.len());
    hits[0]
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
