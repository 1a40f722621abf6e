//! Key attributes under cloudhsm-cli's names (`label`, `key-type`, `encrypt`, …), to and from
//! the wire's `CKA_*` attributes.
//!
//! Values on the command line: booleans are `true`/`false`; `class` and `key-type` take their
//! cloudhsm-cli names (`secret-key`, `aes`, …); `label` is text; `id` is `0x`-prefixed hex or
//! else text; `curve` is a curve name; other byte values are `0x` hex. In JSON output byte
//! values are `0x` hex, except `label` (text) and `curve` (its name).

use coffer_crypto::{EcCurve, KeyType};
use coffer_hsm::AttributeType as A;
use coffer_hsm::object::{key_type_code, key_type_from_code};
use coffer_hsm::{AttributeType, ObjectClass};
use coffer_proto::v1::{Attribute, Template, attribute::Value as WireValue};
use serde_json::{Map, Value};

use crate::error::{CliError, Result};

/// cloudhsm-cli's attribute names, in the order `key list --verbose` shows them.
pub const NAMES: &[(&str, AttributeType)] = &[
    ("label", A::Label),
    ("id", A::Id),
    ("class", A::Class),
    ("key-type", A::KeyType),
    ("token", A::Token),
    ("private", A::Private),
    ("modifiable", A::Modifiable),
    ("copyable", A::Copyable),
    ("destroyable", A::Destroyable),
    ("local", A::Local),
    ("sensitive", A::Sensitive),
    ("always-sensitive", A::AlwaysSensitive),
    ("extractable", A::Extractable),
    ("never-extractable", A::NeverExtractable),
    ("trusted", A::Trusted),
    ("wrap-with-trusted", A::WrapWithTrusted),
    ("encrypt", A::Encrypt),
    ("decrypt", A::Decrypt),
    ("wrap", A::Wrap),
    ("unwrap", A::Unwrap),
    ("sign", A::Sign),
    ("verify", A::Verify),
    ("sign-recover", A::SignRecover),
    ("verify-recover", A::VerifyRecover),
    ("derive", A::Derive),
    ("key-length-bytes", A::ValueLen),
    ("check-value", A::CheckValue),
    ("modulus-size-bits", A::ModulusBits),
    ("modulus", A::Modulus),
    ("public-exponent", A::PublicExponent),
    ("curve", A::EcParams),
    ("ec-point", A::EcPoint),
];

/// What `key list` shows of each key without `--verbose`.
pub const SUMMARY: &[AttributeType] = &[A::Label, A::Id, A::Class, A::KeyType];

/// The attribute called `name` (cloudhsm-cli's name, or the `CKA_*` name).
pub fn lookup(name: &str) -> Result<AttributeType> {
    if let Some((_, ty)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*ty);
    }
    AttributeType::ALL.iter().copied().find(|ty| ty.ck_name().eq_ignore_ascii_case(name)).ok_or_else(|| {
        let known: Vec<_> = NAMES.iter().map(|(n, _)| *n).collect();
        CliError::bad(format!("unknown attribute '{name}'; known: {}", known.join(", ")))
    })
}

/// cloudhsm-cli's name of an attribute (the `CKA_*` name if it has none).
pub fn name_of(ty: AttributeType) -> &'static str {
    NAMES.iter().find(|(_, t)| *t == ty).map_or(ty.ck_name(), |(n, _)| *n)
}

/// The class names of `attr.class=` and `--key-type-class`.
fn class_name(class: ObjectClass) -> &'static str {
    match class {
        ObjectClass::Data => "data",
        ObjectClass::Certificate => "certificate",
        ObjectClass::PublicKey => "public-key",
        ObjectClass::PrivateKey => "private-key",
        ObjectClass::SecretKey => "secret-key",
    }
}

/// cloudhsm-cli's key type names.
pub fn key_type_name(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::Aes => "aes",
        KeyType::GenericSecret => "generic-secret",
        KeyType::Rsa => "rsa",
        KeyType::Ec => "ec",
        KeyType::Ed25519 => "ed25519",
    }
}

/// cloudhsm-cli's curve names.
pub fn curve_name(curve: EcCurve) -> &'static str {
    match curve {
        EcCurve::P256 => "prime256v1",
        EcCurve::P384 => "secp384r1",
        EcCurve::P521 => "secp521r1",
        EcCurve::Secp256k1 => "secp256k1",
    }
}

fn curve_by_name(name: &str) -> Option<EcCurve> {
    match name {
        "secp256r1" | "p-256" | "P-256" => Some(EcCurve::P256),
        _ => [EcCurve::P256, EcCurve::P384, EcCurve::P521, EcCurve::Secp256k1]
            .into_iter()
            .find(|c| curve_name(*c) == name),
    }
}

pub fn bool_attr(ty: AttributeType, value: bool) -> Attribute {
    Attribute { r#type: ty.code(), value: Some(WireValue::BoolValue(value)) }
}

pub fn ulong_attr(ty: AttributeType, value: u64) -> Attribute {
    Attribute { r#type: ty.code(), value: Some(WireValue::UlongValue(value)) }
}

pub fn bytes_attr(ty: AttributeType, value: impl Into<Vec<u8>>) -> Attribute {
    Attribute { r#type: ty.code(), value: Some(WireValue::BytesValue(value.into())) }
}

pub fn class_attr(class: ObjectClass) -> Attribute {
    ulong_attr(A::Class, class.code())
}

pub fn key_type_attr(key_type: KeyType) -> Attribute {
    ulong_attr(A::KeyType, key_type_code(key_type))
}

/// The wire attribute for `name=value` as typed on the command line.
pub fn parse_assignment(text: &str) -> Result<Attribute> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| CliError::bad(format!("attribute '{text}' must be NAME=VALUE")))?;
    parse_value(lookup(name.trim())?, value.trim())
}

/// The wire attribute `ty` with `text` as its value.
pub fn parse_value(ty: AttributeType, text: &str) -> Result<Attribute> {
    let invalid = |want: &str| CliError::bad(format!("{}: '{text}' is not {want}", name_of(ty)));
    let attr = match ty {
        A::Class => {
            let class = ObjectClass::ALL.into_iter().find(|c| class_name(*c) == text);
            class_attr(class.ok_or_else(|| invalid("a class (secret-key, public-key, private-key, …)"))?)
        }
        A::KeyType => {
            let kt = [KeyType::Aes, KeyType::GenericSecret, KeyType::Rsa, KeyType::Ec, KeyType::Ed25519]
                .into_iter()
                .find(|k| key_type_name(*k) == text);
            key_type_attr(kt.ok_or_else(|| invalid("a key type (aes, generic-secret, rsa, ec, ed25519)"))?)
        }
        A::Label => bytes_attr(ty, text.as_bytes()),
        A::Id => match text.strip_prefix("0x") {
            Some(h) => bytes_attr(ty, hex::decode(h).map_err(|_| invalid("0x-prefixed hex"))?),
            None => bytes_attr(ty, text.as_bytes()),
        },
        A::EcParams => {
            bytes_attr(ty, curve_by_name(text).ok_or_else(|| invalid("a curve name"))?.ec_params_der())
        }
        _ => match ty.kind() {
            coffer_hsm::attribute::ValueKind::Bool => match text {
                "true" => bool_attr(ty, true),
                "false" => bool_attr(ty, false),
                _ => return Err(invalid("true or false")),
            },
            coffer_hsm::attribute::ValueKind::Ulong => {
                ulong_attr(ty, text.parse().map_err(|_| invalid("a whole number"))?)
            }
            coffer_hsm::attribute::ValueKind::Bytes => {
                let h = text.strip_prefix("0x").ok_or_else(|| invalid("0x-prefixed hex"))?;
                bytes_attr(ty, hex::decode(h).map_err(|_| invalid("0x-prefixed hex"))?)
            }
            _ => return Err(CliError::bad(format!("{} cannot be set from the command line", name_of(ty)))),
        },
    };
    Ok(attr)
}

/// A template from `NAME=VALUE` assignments, after `base`; an assignment overrides a base
/// attribute of the same type.
pub fn template(base: Vec<Attribute>, assignments: &[String]) -> Result<Template> {
    let mut attributes = base;
    for text in assignments {
        let attr = parse_assignment(text)?;
        attributes.retain(|a| a.r#type != attr.r#type);
        attributes.push(attr);
    }
    Ok(Template { attributes })
}

/// The JSON form of one attribute's value.
pub fn render_value(attr: &Attribute) -> Value {
    let ty = AttributeType::from_code(attr.r#type);
    match (&attr.value, ty) {
        (None, _) => Value::Null,
        (Some(WireValue::BoolValue(b)), _) => Value::Bool(*b),
        (Some(WireValue::UlongValue(n)), Some(A::Class)) => {
            ObjectClass::from_code(*n).map_or(Value::from(*n), |c| Value::from(class_name(c)))
        }
        (Some(WireValue::UlongValue(n)), Some(A::KeyType)) => {
            key_type_from_code(*n).map_or(Value::from(*n), |k| Value::from(key_type_name(k)))
        }
        (Some(WireValue::UlongValue(n)), _) => Value::from(*n),
        (Some(WireValue::BytesValue(b)), Some(A::Label)) => {
            Value::from(String::from_utf8_lossy(b).into_owned())
        }
        (Some(WireValue::BytesValue(b)), Some(A::EcParams)) => EcCurve::from_ec_params_der(b)
            .map_or_else(|_| Value::from(format!("0x{}", hex::encode(b))), |c| Value::from(curve_name(c))),
        (Some(WireValue::BytesValue(b)), _) => Value::from(format!("0x{}", hex::encode(b))),
        (Some(WireValue::TemplateValue(t)), _) => Value::Object(render_all(&t.attributes)),
    }
}

/// Attributes as a JSON object keyed by cloudhsm-cli's names.
pub fn render_all(attrs: &[Attribute]) -> Map<String, Value> {
    attrs
        .iter()
        .map(|a| {
            let name = AttributeType::from_code(a.r#type)
                .map_or_else(|| format!("{:#x}", a.r#type), |t| name_of(t).to_owned());
            (name, render_value(a))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_known_once_and_round_trips() {
        for (name, ty) in NAMES {
            assert_eq!(lookup(name).unwrap(), *ty);
            assert_eq!(name_of(*ty), *name);
            assert_eq!(NAMES.iter().filter(|(n, _)| n == name).count(), 1, "{name}");
        }
        assert_eq!(lookup("CKA_LABEL").unwrap(), A::Label);
        assert!(lookup("colour").unwrap_err().to_string().contains("unknown attribute 'colour'"));
    }

    #[test]
    fn assignments_parse_by_kind() {
        assert_eq!(parse_assignment("encrypt=true").unwrap(), bool_attr(A::Encrypt, true));
        assert_eq!(parse_assignment("label=my key").unwrap(), bytes_attr(A::Label, *b"my key"));
        assert_eq!(parse_assignment("id=0x0a0b").unwrap(), bytes_attr(A::Id, vec![10, 11]));
        assert_eq!(parse_assignment("id=abc").unwrap(), bytes_attr(A::Id, *b"abc"));
        assert_eq!(parse_assignment("class=secret-key").unwrap(), class_attr(ObjectClass::SecretKey));
        assert_eq!(parse_assignment("key-type=aes").unwrap(), key_type_attr(KeyType::Aes));
        assert_eq!(parse_assignment("key-length-bytes=32").unwrap(), ulong_attr(A::ValueLen, 32));
        assert_eq!(
            parse_assignment("curve=secp384r1").unwrap(),
            bytes_attr(A::EcParams, EcCurve::P384.ec_params_der())
        );
    }

    #[test]
    fn bad_values_name_the_attribute() {
        let e = parse_assignment("encrypt=yes").unwrap_err().to_string();
        assert_eq!(e, "encrypt: 'yes' is not true or false");
        assert!(parse_assignment("key-type=des").unwrap_err().to_string().starts_with("key-type:"));
        assert!(parse_assignment("id=0xzz").is_err());
        assert!(parse_assignment("encrypt").unwrap_err().to_string().contains("NAME=VALUE"));
        assert!(parse_assignment("start-date=20240101").is_err());
    }

    #[test]
    fn templates_let_later_assignments_win() {
        let t =
            template(vec![bool_attr(A::Token, true)], &["token=false".into(), "sign=true".into()]).unwrap();
        assert_eq!(t.attributes, vec![bool_attr(A::Token, false), bool_attr(A::Sign, true)]);
    }

    #[test]
    fn rendering_uses_names_text_and_hex() {
        let attrs = [
            class_attr(ObjectClass::PrivateKey),
            key_type_attr(KeyType::Ec),
            bytes_attr(A::Label, *b"k1"),
            bytes_attr(A::Id, vec![1, 2]),
            bytes_attr(A::EcParams, EcCurve::P256.ec_params_der()),
            bool_attr(A::Sign, true),
            ulong_attr(A::ModulusBits, 2048),
            Attribute { r#type: A::Wrap.code(), value: None },
        ];
        let json = Value::Object(render_all(&attrs));
        assert_eq!(
            json,
            serde_json::json!({"class": "private-key", "key-type": "ec", "label": "k1", "id": "0x0102",
                "curve": "prime256v1", "sign": true, "modulus-size-bits": 2048, "wrap": null})
        );
    }
}
