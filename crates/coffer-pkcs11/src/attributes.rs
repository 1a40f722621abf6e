//! Attributes between the C ABI and the wire: a caller's template (bytes per `CKA_*`) becomes
//! typed `coffer.hsm.v1` attributes, and the node's answers become bytes again. Which rules an
//! attribute obeys (read-only, sensitive, required) is the node's business: a value of the
//! wrong size is refused here only because it cannot be put on the wire otherwise.

use coffer_client::v1;
use coffer_hsm::AttributeType;
use coffer_hsm::attribute::ValueKind;
use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{Result, fail};

/// One attribute of a caller's template.
#[derive(Debug, Clone)]
pub struct InAttribute {
    /// The `CKA_*` code.
    pub ty: CK_ATTRIBUTE_TYPE,
    /// Its value.
    pub value: InValue,
}

/// A template value as the caller gave it.
#[derive(Debug, Clone)]
pub enum InValue {
    /// The bytes of a `CK_BBOOL`, `CK_ULONG`, `CK_DATE` or byte array.
    Bytes(Zeroizing<Vec<u8>>),
    /// An attribute array (`CKA_WRAP_TEMPLATE`, `CKA_UNWRAP_TEMPLATE`).
    Array(Vec<InAttribute>),
}

/// A value to hand back to the caller.
#[derive(Debug, Clone)]
pub enum OutValue {
    /// Bytes as the C type lays them out.
    Bytes(Zeroizing<Vec<u8>>),
    /// An attribute array.
    Array(Vec<(CK_ATTRIBUTE_TYPE, OutValue)>),
}

/// The answer for one attribute of `C_GetAttributeValue`.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The value.
    Value(OutValue),
    /// `CKR_ATTRIBUTE_SENSITIVE`.
    Sensitive,
    /// `CKR_ATTRIBUTE_TYPE_INVALID`.
    TypeInvalid,
}

impl InAttribute {
    /// A byte-valued attribute (for templates the library builds itself).
    pub fn bytes(ty: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Self {
        InAttribute { ty, value: InValue::Bytes(Zeroizing::new(value.to_vec())) }
    }

    /// The raw bytes, if this is not an array.
    pub fn raw(&self) -> Option<&[u8]> {
        match &self.value {
            InValue::Bytes(b) => Some(b),
            InValue::Array(_) => None,
        }
    }

    /// The value as a `CK_ULONG`, if it is one.
    pub fn ulong(&self) -> Option<CK_ULONG> {
        let raw = self.raw()?;
        let bytes: [u8; size_of::<CK_ULONG>()] = raw.try_into().ok()?;
        Some(CK_ULONG::from_ne_bytes(bytes))
    }
}

/// The first attribute of this type in a template.
pub fn find(template: &[InAttribute], ty: CK_ATTRIBUTE_TYPE) -> Option<&InAttribute> {
    template.iter().find(|a| a.ty == ty)
}

/// A caller's template on the wire.
pub fn to_wire(template: &[InAttribute]) -> Result<v1::Template> {
    let attributes = template.iter().map(attribute_to_wire).collect::<Result<Vec<_>>>()?;
    Ok(v1::Template { attributes })
}

fn attribute_to_wire(attribute: &InAttribute) -> Result<v1::Attribute> {
    use v1::attribute::Value;
    let kind = AttributeType::from_code(attribute.ty).map(AttributeType::kind);
    let value = match (&attribute.value, kind) {
        (InValue::Array(nested), _) => Value::TemplateValue(to_wire(nested)?),
        (InValue::Bytes(b), Some(ValueKind::Bool)) => match b.as_slice() {
            [v] => Value::BoolValue(*v != CK_FALSE),
            _ => {
                return fail(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    format!("{} must be one CK_BBOOL byte", name(attribute.ty)),
                );
            }
        },
        (InValue::Bytes(_), Some(ValueKind::Ulong)) => match attribute.ulong() {
            Some(n) => Value::UlongValue(n),
            None => {
                return fail(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    format!("{} must be a CK_ULONG", name(attribute.ty)),
                );
            }
        },
        (InValue::Bytes(_), Some(ValueKind::Template)) => {
            return fail(
                CKR_ATTRIBUTE_VALUE_INVALID,
                format!("{} must be an attribute array", name(attribute.ty)),
            );
        }
        // Bytes, dates, and codes Coffer does not know (the node answers those with
        // CKR_ATTRIBUTE_TYPE_INVALID, as the standard says).
        (InValue::Bytes(b), _) => Value::BytesValue(b.to_vec()),
    };
    Ok(v1::Attribute { r#type: attribute.ty, value: Some(value) })
}

/// The node's answer for one attribute, as the caller receives it.
pub fn answer_from_wire(result: &v1::AttributeResult) -> Answer {
    use v1::attribute_result::Status;
    match Status::try_from(result.status) {
        Ok(Status::Value) => match result.attribute.as_ref().and_then(|a| a.value.as_ref()) {
            Some(value) => Answer::Value(value_from_wire(value)),
            None => Answer::TypeInvalid,
        },
        Ok(Status::Sensitive) => Answer::Sensitive,
        _ => Answer::TypeInvalid,
    }
}

fn value_from_wire(value: &v1::attribute::Value) -> OutValue {
    use v1::attribute::Value;
    match value {
        Value::BoolValue(b) => OutValue::Bytes(Zeroizing::new(vec![if *b { CK_TRUE } else { CK_FALSE }])),
        Value::UlongValue(n) => OutValue::Bytes(Zeroizing::new((*n as CK_ULONG).to_ne_bytes().to_vec())),
        Value::BytesValue(b) => OutValue::Bytes(Zeroizing::new(b.clone())),
        Value::TemplateValue(t) => OutValue::Array(
            t.attributes
                .iter()
                .filter_map(|a| a.value.as_ref().map(|v| (a.r#type as CK_ATTRIBUTE_TYPE, value_from_wire(v))))
                .collect(),
        ),
    }
}

fn name(ty: CK_ATTRIBUTE_TYPE) -> String {
    AttributeType::from_code(ty).map_or_else(|| format!("CKA {ty:#x}"), |t| t.ck_name().to_owned())
}

/// Template helpers for attributes the library adds itself.
pub fn ulong_attribute(ty: CK_ATTRIBUTE_TYPE, value: CK_ULONG) -> InAttribute {
    InAttribute::bytes(ty, &value.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_attribute_table() {
        let template = vec![
            InAttribute::bytes(CKA_TOKEN, &[CK_TRUE]),
            ulong_attribute(CKA_VALUE_LEN, 32),
            InAttribute::bytes(CKA_LABEL, b"k"),
            InAttribute::bytes(0x8000_0001, b"vendor"),
        ];
        let wire = to_wire(&template).unwrap();
        use v1::attribute::Value;
        assert_eq!(wire.attributes[0].value, Some(Value::BoolValue(true)));
        assert_eq!(wire.attributes[1].value, Some(Value::UlongValue(32)));
        assert_eq!(wire.attributes[2].value, Some(Value::BytesValue(b"k".to_vec())));
        assert_eq!(wire.attributes[3].value, Some(Value::BytesValue(b"vendor".to_vec())));
    }

    #[test]
    fn wrong_sizes_are_value_invalid() {
        let bad_bool = InAttribute::bytes(CKA_TOKEN, &[1, 0]);
        assert_eq!(to_wire(&[bad_bool]).unwrap_err().rv, CKR_ATTRIBUTE_VALUE_INVALID);
        let bad_ulong = InAttribute::bytes(CKA_VALUE_LEN, &[1, 0, 0]);
        assert_eq!(to_wire(&[bad_ulong]).unwrap_err().rv, CKR_ATTRIBUTE_VALUE_INVALID);
    }

    #[test]
    fn answers_become_c_layouts() {
        use v1::attribute_result::Status;
        let result = v1::AttributeResult {
            r#type: CKA_VALUE_LEN,
            status: Status::Value as i32,
            attribute: Some(v1::Attribute {
                r#type: CKA_VALUE_LEN,
                value: Some(v1::attribute::Value::UlongValue(16)),
            }),
        };
        match answer_from_wire(&result) {
            Answer::Value(OutValue::Bytes(b)) => assert_eq!(b.as_slice(), &16u64.to_ne_bytes()),
            other => panic!("{other:?}"),
        }
        let sensitive =
            v1::AttributeResult { r#type: CKA_VALUE, status: Status::Sensitive as i32, attribute: None };
        assert!(matches!(answer_from_wire(&sensitive), Answer::Sensitive));
    }
}
