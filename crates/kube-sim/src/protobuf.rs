//! Decoding of the Kubernetes protobuf envelope for the few kinds kubectl's generator commands
//! send that way (`kubectl create configmap|secret|namespace|serviceaccount`). Everything else
//! in protobuf is refused with 415.

use base64::Engine;
use serde_json::{Map, Value, json};

/// Errors decoding a protobuf body.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtobufError {
    /// Not a `k8s\0` envelope or truncated data.
    #[error("malformed protobuf body")]
    Malformed,
    /// A kind this server does not decode from protobuf.
    #[error("protobuf encoding of {0} is not supported; send JSON")]
    Unsupported(String),
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtobufError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or(ProtobufError::Malformed)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(ProtobufError::Malformed)
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ProtobufError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let wire = match key & 7 {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?)
                    .map_err(|_| ProtobufError::Malformed)?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or(ProtobufError::Malformed)?;
                let b = &buf[pos..end];
                pos = end;
                Wire::Bytes(b)
            }
            5 => {
                pos += 4;
                Wire::Fixed
            }
            _ => return Err(ProtobufError::Malformed),
        };
        out.push((key >> 3, wire));
    }
    if pos > buf.len() {
        return Err(ProtobufError::Malformed);
    }
    Ok(out)
}

fn text(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

fn b64(b: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A `map<string, V>` entry: field 1 key, field 2 value.
fn map_entry(b: &[u8], value: fn(&[u8]) -> Value) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut val = value(&[]);
    for (f, w) in fields(b)? {
        match (f, w) {
            (1, Wire::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
            (2, Wire::Bytes(v)) => val = value(v),
            _ => {}
        }
    }
    Ok((key, val))
}

fn insert_entry(
    obj: &mut Map<String, Value>,
    field: &str,
    b: &[u8],
    value: fn(&[u8]) -> Value,
) -> Result<(), ProtobufError> {
    let (k, v) = map_entry(b, value)?;
    let slot = obj.entry(field.to_string()).or_insert_with(|| json!({}));
    if let Some(m) = slot.as_object_mut() {
        m.insert(k, v);
    }
    Ok(())
}

fn push(obj: &mut Map<String, Value>, field: &str, v: Value) {
    let slot = obj.entry(field.to_string()).or_insert_with(|| json!([]));
    if let Some(a) = slot.as_array_mut() {
        a.push(v);
    }
}

fn object_meta(b: &[u8]) -> Result<Value, ProtobufError> {
    let mut m = Map::new();
    for (f, w) in fields(b)? {
        match (f, w) {
            (1, Wire::Bytes(v)) => {
                m.insert("name".into(), text(v));
            }
            (2, Wire::Bytes(v)) => {
                m.insert("generateName".into(), text(v));
            }
            (3, Wire::Bytes(v)) => {
                m.insert("namespace".into(), text(v));
            }
            (11, Wire::Bytes(v)) => insert_entry(&mut m, "labels", v, text)?,
            (12, Wire::Bytes(v)) => insert_entry(&mut m, "annotations", v, text)?,
            (14, Wire::Bytes(v)) => push(&mut m, "finalizers", text(v)),
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

/// `SelfSubjectAccessReviewSpec`: 1 resourceAttributes, 2 nonResourceAttributes.
fn access_review_spec(b: &[u8]) -> Result<Value, ProtobufError> {
    const RESOURCE: [&str; 7] = [
        "namespace",
        "verb",
        "group",
        "version",
        "resource",
        "subresource",
        "name",
    ];
    const NON_RESOURCE: [&str; 2] = ["path", "verb"];
    let strings = |b: &[u8], names: &[&str]| -> Result<Value, ProtobufError> {
        let mut m = Map::new();
        for (f, w) in fields(b)? {
            let slot = usize::try_from(f).ok().and_then(|f| f.checked_sub(1));
            if let (Some(name), Wire::Bytes(v)) = (slot.and_then(|i| names.get(i)), w) {
                m.insert((*name).to_string(), text(v));
            }
        }
        Ok(Value::Object(m))
    };
    let mut spec = Map::new();
    for (f, w) in fields(b)? {
        match (f, w) {
            (1, Wire::Bytes(v)) => {
                spec.insert("resourceAttributes".into(), strings(v, &RESOURCE)?);
            }
            (2, Wire::Bytes(v)) => {
                spec.insert("nonResourceAttributes".into(), strings(v, &NON_RESOURCE)?);
            }
            _ => {}
        }
    }
    Ok(Value::Object(spec))
}

fn decode_kind(kind: &str, raw: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut o = Map::new();
    for (f, w) in fields(raw)? {
        match (kind, f, w) {
            (_, 1, Wire::Bytes(v)) => {
                o.insert("metadata".into(), object_meta(v)?);
            }
            ("ConfigMap", 2, Wire::Bytes(v)) => insert_entry(&mut o, "data", v, text)?,
            ("ConfigMap", 3, Wire::Bytes(v)) => insert_entry(&mut o, "binaryData", v, b64)?,
            ("ConfigMap", 4, Wire::Varint(v)) | ("Secret", 5, Wire::Varint(v)) => {
                o.insert("immutable".into(), json!(v != 0));
            }
            ("Secret", 2, Wire::Bytes(v)) => insert_entry(&mut o, "data", v, b64)?,
            ("Secret", 3, Wire::Bytes(v)) => {
                o.insert("type".into(), text(v));
            }
            ("Secret", 4, Wire::Bytes(v)) => insert_entry(&mut o, "stringData", v, text)?,
            ("Namespace", 2, Wire::Bytes(v)) => {
                let mut spec = Map::new();
                for (sf, sw) in fields(v)? {
                    if let (1, Wire::Bytes(fin)) = (sf, sw) {
                        push(&mut spec, "finalizers", text(fin));
                    }
                }
                o.insert("spec".into(), Value::Object(spec));
            }
            ("ServiceAccount", 4, Wire::Varint(v)) => {
                o.insert("automountServiceAccountToken".into(), json!(v != 0));
            }
            ("SelfSubjectAccessReview", 2, Wire::Bytes(v)) => {
                o.insert("spec".into(), access_review_spec(v)?);
            }
            (
                "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount" | "SelfSubjectAccessReview",
                _,
                _,
            ) => {}
            (other, _, _) => return Err(ProtobufError::Unsupported(other.to_string())),
        }
    }
    Ok(o)
}

/// Decodes a `k8s\0`-prefixed `runtime.Unknown` envelope into the JSON object.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or(ProtobufError::Malformed)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (f, w) in fields(rest)? {
        match (f, w) {
            (1, Wire::Bytes(tm)) => {
                for (tf, tw) in fields(tm)? {
                    match (tf, tw) {
                        (1, Wire::Bytes(v)) => {
                            api_version = String::from_utf8_lossy(v).into_owned()
                        }
                        (2, Wire::Bytes(v)) => kind = String::from_utf8_lossy(v).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(r)) => raw = r,
            _ => {}
        }
    }
    let decodable = api_version == "v1"
        || (api_version == "authorization.k8s.io/v1" && kind == "SelfSubjectAccessReview");
    if !decodable {
        return Err(ProtobufError::Unsupported(format!("{api_version} {kind}")));
    }
    let mut o = decode_kind(&kind, raw)?;
    o.insert("apiVersion".into(), json!(api_version));
    o.insert("kind".into(), json!(kind));
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn decodes_a_secret_envelope() {
        let meta = [
            ld(1, b"tok"),
            ld(3, b"ns1"),
            ld(11, &[ld(1, b"app"), ld(2, b"web")].concat()),
        ]
        .concat();
        let secret = [
            ld(1, &meta),
            ld(2, &[ld(1, b"token"), ld(2, b"s3")].concat()),
            ld(3, b"Opaque"),
        ]
        .concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &type_meta), ld(2, &secret)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "Secret");
        assert_eq!(v["metadata"]["name"], "tok");
        assert_eq!(v["metadata"]["labels"]["app"], "web");
        assert_eq!(v["data"]["token"], "czM=");
        assert_eq!(v["type"], "Opaque");
    }

    #[test]
    fn refuses_other_kinds_and_garbage() {
        let type_meta = [ld(1, b"apps/v1"), ld(2, b"Deployment")].concat();
        let body = [b"k8s\0".to_vec(), ld(1, &type_meta)].concat();
        assert!(matches!(decode(&body), Err(ProtobufError::Unsupported(_))));
        assert_eq!(decode(b"{}"), Err(ProtobufError::Malformed));
    }
}
