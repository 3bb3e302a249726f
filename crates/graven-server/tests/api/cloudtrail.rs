//! AWS CloudTrail records posted to `POST /v1/sources/cloudtrail` as a `source` identity, in
//! the documented record format (CloudTrail User Guide, "CloudTrail record contents" and
//! "userIdentity element"): an IAM user, a role session, an AWS service acting for an account,
//! another account (cross-account), and a refused call. `graven import cloudtrail` reading log
//! files into the real binary is `crates/graven/tests/cloudtrail.rs`.

use graven_server::testing::Harness;
use serde_json::{Value, json};

fn source(h: &Harness, id: &str, subjects: &[&str]) -> String {
    let body = json!({"id": id, "kind": "integration", "owner": "team-cloud", "role": "source",
                      "source": {"types": ["cloudtrail"], "subjects": subjects}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
    h.new_key(id, json!({}))
}

fn post(h: &Harness, key: &str, body: &Value) -> graven_server::testing::Answer {
    h.check(h.post("/v1/sources/cloudtrail").bearer(key).json(body.to_string()))
}

/// Records of the five kinds, as CloudTrail writes them (also read by
/// `crates/graven/tests/cloudtrail.rs`).
pub fn records() -> Vec<Value> {
    let file: Value = serde_json::from_str(include_str!("../fixtures/cloudtrail-records.json")).unwrap();
    file["Records"].as_array().unwrap().clone()
}

#[test]
fn cloudtrail_records_keep_their_aws_identity_as_an_attested_actor() {
    let h = Harness::start();
    let key =
        source(&h, "src:cloudtrail", &["arn:aws:iam::111122223333:*", "*.amazonaws.com", "aws:account:*"]);
    let size = h.size();
    let a = post(&h, &key, &json!({"Records": records()})).expect(200).json();
    assert_eq!(a, json!({"logged": 5, "first_index": size, "skipped": 0, "duplicates": 0}));
    let ev: Vec<Value> = (size..size + 5).map(|i| h.event(i)).collect();

    // An IAM user and its access key.
    let e = &ev[0];
    assert_eq!(e["action"], "aws.s3.PutObject");
    assert_eq!(e["actor"]["id"], "arn:aws:iam::111122223333:user/ci-deployer");
    assert_eq!(e["actor"]["kind"], "aws_iam_user");
    assert_eq!(e["actor"]["access_key_id"], "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(e["actor"]["auth"], "attested");
    assert_eq!(e["actor"]["attested_by"]["id"], "src:cloudtrail");
    assert_eq!(e["actor"]["platform"], "cloudtrail");
    assert_eq!(
        e["resource"],
        json!({"type": "AWS::S3::Object", "id": "arn:aws:s3:::releases/app-1.4.2.tar.gz"})
    );
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["occurred_at"], "2026-12-01T09:00:01Z");
    assert_eq!(e["request_id"], "8XXWCQ9W2ZBTMT6K");
    assert_eq!(e["source"], json!({"ip": "203.0.113.10", "user_agent": "aws-cli/2.17.0"}));
    let ct = &e["details"]["cloudtrail"];
    assert_eq!(ct["awsRegion"], "eu-west-1");
    assert_eq!(ct["record"]["requestParameters"]["key"], "app-1.4.2.tar.gz");
    assert_eq!(ct["dedup_id"], "2a9d8e0e-5c1f-4a1e-9c49-000000000001");

    // A role session: the role is the actor, the session and its key kept.
    let e = &ev[1];
    assert_eq!(e["actor"]["id"], "arn:aws:iam::111122223333:role/payments-api");
    assert_eq!(e["actor"]["kind"], "aws_assumed_role");
    assert_eq!(e["actor"]["arn"], "arn:aws:sts::111122223333:assumed-role/payments-api/i-0abc");
    assert_eq!(e["actor"]["access_key_id"], "ASIAIOSFODNN7EXAMPLE");
    assert_eq!(e["action"], "aws.secretsmanager.GetSecretValue");

    // An AWS service: named by the service; its source is a host name, not an address.
    let e = &ev[2];
    assert_eq!(
        (e["actor"]["id"].as_str(), e["actor"]["kind"].as_str()),
        (Some("ec2.amazonaws.com"), Some("aws_service"))
    );
    assert_eq!(e["source"]["host"], "ec2.amazonaws.com");

    // Another account (cross-account): the calling account, and the account called.
    let e = &ev[3];
    assert_eq!(e["actor"]["id"], "aws:account:444455556666");
    assert_eq!(e["actor"]["account_id"], "444455556666");
    assert_eq!(e["details"]["cloudtrail"]["recipientAccountId"], "111122223333");

    // A refused call.
    let e = &ev[4];
    assert_eq!(
        (e["action"].as_str(), e["outcome"].as_str()),
        (Some("aws.iam.CreateAccessKey"), Some("denied"))
    );
    assert_eq!(e["details"]["cloudtrail"]["errorCode"], "AccessDenied");

    // Imported again: nothing is logged twice.
    let a = post(&h, &key, &json!({"Records": records()})).expect(200).json();
    assert_eq!(a, json!({"logged": 0, "skipped": 0, "duplicates": 5}));
    assert_eq!(h.verify().tree_size, h.size());
}

#[test]
fn cloudtrail_input_outside_the_grant_or_malformed_is_refused_whole() {
    let h = Harness::start();
    // Only this account's IAM principals: the service and the other account are outside.
    let key = source(&h, "src:ct-narrow", &["arn:aws:iam::111122223333:*"]);
    let size = h.size();
    let p = post(&h, &key, &json!({"Records": records()})).expect(403).json();
    assert!(p["detail"].as_str().unwrap().contains("\"ec2.amazonaws.com\" does not match"), "{p}");
    assert_eq!(h.size(), size + 1, "only the refusal is recorded");
    let before = h.size();
    let good = records()[0].clone();
    let mut no_id = good.clone();
    no_id.as_object_mut().unwrap().remove("eventID");
    let mut no_who = good.clone();
    no_who.as_object_mut().unwrap().remove("userIdentity");
    let mut odd = good.clone();
    odd["userIdentity"] = json!({"type": "AssumedRole"});
    for (body, needle) in [
        (json!([good.clone()]), "not a CloudTrail log file"),
        (json!({"records": [good.clone()]}), "not a CloudTrail log file"),
        (json!({"Records": [good.clone(), no_id]}), "Records[1].eventID is missing"),
        (json!({"Records": [no_who]}), "Records[0].userIdentity is missing"),
        (json!({"Records": [odd]}), "an AssumedRole without an arn"),
        (json!({"Records": [1]}), "Records[0] is not a CloudTrail record object"),
    ] {
        let p = post(&h, &key, &body).expect(400).json();
        assert!(p["detail"].as_str().unwrap().contains(needle), "{needle}: {p}");
    }
    h.check(h.post("/v1/sources/cloudtrail?since=1").bearer(&key).json(json!({"Records": []}).to_string()))
        .expect(400);
    assert_eq!(h.size(), before, "nothing appended by refused input");
    assert_eq!(post(&h, &key, &json!({"Records": [good]})).expect(200).json()["logged"], 1);
}
