//! Lenient extraction of the indexed fields from one log entry.
//!
//! A log entry may hold arbitrary bytes. Anything that is not a JSON object yields no fields, and each
//! field is taken independently: a field of the wrong JSON type is simply absent, it does not spoil the
//! others. Nothing is allocated for strings without escapes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The indexed fields of one event. `fields` is in [`crate::Field`] order: actor.id, action, resource.id,
/// outcome.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Extracted<'a> {
    pub(crate) fields: [Option<Cow<'a, str>>; 4],
    /// Only set when the value has the fixed 27-character timestamp format.
    pub(crate) logged_at: Option<Cow<'a, str>>,
}

pub(crate) fn extract(entry: &[u8]) -> Extracted<'_> {
    match serde_json::from_slice::<Top<'_>>(entry) {
        Ok(top) => {
            let mut out = top.0;
            if out.logged_at.as_deref().is_some_and(|t| !is_timestamp(t.as_bytes())) {
                out.logged_at = None;
            }
            out
        }
        Err(_) => Extracted::default(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: shape only (digits and separators), which is what makes the
/// lexicographic order of two such strings their time order.
pub(crate) fn is_timestamp(t: &[u8]) -> bool {
    const SHAPE: &[u8; 27] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    t.len() == SHAPE.len()
        && t.iter().zip(SHAPE).all(|(&c, &s)| if s == b'd' { c.is_ascii_digit() } else { c == s })
}

struct Top<'a>(Extracted<'a>);

enum TopKey {
    Actor,
    Action,
    Resource,
    Outcome,
    LoggedAt,
    Other,
}

impl<'de> Deserialize<'de> for TopKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TopKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TopKey, E> {
                Ok(match v {
                    "actor" => TopKey::Actor,
                    "action" => TopKey::Action,
                    "resource" => TopKey::Resource,
                    "outcome" => TopKey::Outcome,
                    "logged_at" => TopKey::LoggedAt,
                    _ => TopKey::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
                let mut out = Extracted::default();
                while let Some(key) = map.next_key::<TopKey>()? {
                    match key {
                        TopKey::Actor => out.fields[0] = map.next_value::<IdOf<'de>>()?.0,
                        TopKey::Action => out.fields[1] = map.next_value::<Lenient<'de>>()?.0,
                        TopKey::Resource => out.fields[2] = map.next_value::<IdOf<'de>>()?.0,
                        TopKey::Outcome => out.fields[3] = map.next_value::<Lenient<'de>>()?.0,
                        TopKey::LoggedAt => out.logged_at = map.next_value::<Lenient<'de>>()?.0,
                        TopKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Top(out))
            }
        }
        // Anything but an object is rejected here and becomes "no fields" in `extract`.
        d.deserialize_map(V)
    }
}

/// A string value, or `None` for any other JSON value (which is consumed and ignored).
struct Lenient<'a>(Option<Cow<'a, str>>);

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Lenient<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Lenient<'de>, E> {
        Ok(Lenient(Some(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient<'de>, E> {
        Ok(Lenient(Some(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Lenient<'de>, E> {
        Ok(Lenient(Some(Cow::Owned(v))))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
}

impl<'de> Deserialize<'de> for Lenient<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor)
    }
}

/// The string `id` member of an object (`actor`, `resource`); `None` for anything else.
struct IdOf<'a>(Option<Cow<'a, str>>);

enum IdKey {
    Id,
    Other,
}

impl<'de> Deserialize<'de> for IdKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IdKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdKey, E> {
                Ok(if v == "id" { IdKey::Id } else { IdKey::Other })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for IdOf<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdOf<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdOf<'de>, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<IdKey>()? {
                    match key {
                        IdKey::Id => id = map.next_value::<Lenient<'de>>()?.0,
                        IdKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(IdOf(id))
            }
            // Every non-object value: consume it through the lenient visitor and drop it.
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IdOf<'de>, A::Error> {
                LenientVisitor.visit_seq(seq).map(|_| IdOf(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(json: &str) -> (Vec<Option<String>>, Option<String>) {
        let e = extract(json.as_bytes());
        (e.fields.iter().map(|f| f.as_deref().map(str::to_owned)).collect(), e.logged_at.map(|t| t.into()))
    }

    #[test]
    fn full_event() {
        let (f, t) = fields(
            r#"{"action":"deployment.create","actor":{"auth":"bearer","id":"svc:payments-worker","kind":"service_account"},"logged_at":"2026-11-26T17:48:20.123456Z","outcome":"success","resource":{"id":"prod/payments","type":"k8s.deployment"},"v":1}"#,
        );
        assert_eq!(
            f,
            vec![
                Some("svc:payments-worker".into()),
                Some("deployment.create".into()),
                Some("prod/payments".into()),
                Some("success".into())
            ]
        );
        assert_eq!(t.as_deref(), Some("2026-11-26T17:48:20.123456Z"));
    }

    #[test]
    fn escapes_and_wrong_types() {
        let (f, t) = fields(
            r#"{"action":7,"actor":{"id":"a\u00e9\"b","x":[1,{"y":2}]},"resource":"flat","outcome":{"id":"x"},"logged_at":"2026-11-26 17:48:20"}"#,
        );
        assert_eq!(f, vec![Some("aé\"b".into()), None, None, None]);
        assert_eq!(t, None);
        let (f, _) = fields(r#"{"actor":[1,2],"resource":{"id":null},"action":"a"}"#);
        assert_eq!(f, vec![None, Some("a".into()), None, None]);
    }

    #[test]
    fn not_objects() {
        for raw in [&b"[1,2]"[..], b"\"str\"", b"42", b"", b"\xff\xfe", b"{\"actor\":{\"id\":\"a\"}", b"{} x"]
        {
            assert_eq!(extract(raw), Extracted::default(), "{raw:?}");
        }
    }

    #[test]
    fn timestamp_shape() {
        assert!(is_timestamp(b"2026-11-26T17:48:20.123456Z"));
        assert!(!is_timestamp(b"2026-11-26T17:48:20.12345Z"));
        assert!(!is_timestamp(b"2026-11-26T17:48:20.123456+"));
        assert!(!is_timestamp(b"2026-11-26t17:48:20.123456Z"));
        assert!(!is_timestamp(b"2026-1a-26T17:48:20.123456Z"));
    }
}
