//! PKCS#11 attributes: their types (`CKA_*` with the numeric codes of `pkcs11t.h`), their
//! values, a caller's [`Template`] and an object's full set of [`Attributes`].
//!
//! Attribute types serialise as their `CKA_*` code, not as a Rust variant index, so stored state
//! stays readable if variants are added. Byte values are wiped when dropped: a template for
//! `C_CreateObject` carries a key's `CKA_VALUE` in plaintext on its way to being sealed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::{HsmError, Result};

/// `CK_UNAVAILABLE_INFORMATION`: the value of `CKA_KEY_GEN_MECHANISM` for a key that was not
/// generated on the HSM, and of an unsigned attribute whose value is unknown.
pub const CK_UNAVAILABLE_INFORMATION: u64 = u64::MAX;

/// The longest `CKA_LABEL` or `CKA_ID` accepted. Both are indexed, so they are kept short.
pub const MAX_INDEXED_ATTRIBUTE_LEN: usize = 1024;
/// The longest `CKA_VALUE` of a data object or certificate.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;
/// The longest value of any other byte attribute.
pub const MAX_BYTES_ATTRIBUTE_LEN: usize = 64 * 1024;
/// The most attributes one template (or nested wrap/unwrap template) may carry.
pub const MAX_TEMPLATE_ATTRIBUTES: usize = 128;

/// The shape of an attribute's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `CK_BBOOL`
    Bool,
    /// `CK_ULONG` (class, key type, lengths, mechanism)
    Ulong,
    /// A byte array (labels, ids, big integers, DER)
    Bytes,
    /// `CK_DATE`: empty, or eight ASCII digits `YYYYMMDD`
    Date,
    /// An attribute array (`CKA_WRAP_TEMPLATE`, `CKA_UNWRAP_TEMPLATE`)
    Template,
}

macro_rules! attribute_types {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $kind:ident; )*) => {
        /// A PKCS#11 attribute type (`CK_ATTRIBUTE_TYPE`). Declared in code order, so sorted
        /// collections of attributes are in `CKA_*` code order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(into = "u64", try_from = "u64")]
        pub enum AttributeType {
            $( $(#[$doc])* $variant, )*
        }

        impl AttributeType {
            /// Every attribute type Coffer knows, in code order.
            pub const ALL: &'static [AttributeType] = &[$(Self::$variant),*];

            /// The `CKA_*` code.
            pub fn code(self) -> u64 {
                match self { $(Self::$variant => $code,)* }
            }

            /// The attribute type with this `CKA_*` code, if Coffer knows it.
            pub fn from_code(code: u64) -> Option<Self> {
                match code { $($code => Some(Self::$variant),)* _ => None }
            }

            /// The PKCS#11 name, e.g. `CKA_LABEL`.
            pub fn ck_name(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            /// The shape of this attribute's value.
            pub fn kind(self) -> ValueKind {
                match self { $(Self::$variant => ValueKind::$kind,)* }
            }
        }
    };
}

attribute_types! {
    /// `CKA_CLASS`
    Class = 0x0000, "CKA_CLASS", Ulong;
    /// `CKA_TOKEN`
    Token = 0x0001, "CKA_TOKEN", Bool;
    /// `CKA_PRIVATE`
    Private = 0x0002, "CKA_PRIVATE", Bool;
    /// `CKA_LABEL`
    Label = 0x0003, "CKA_LABEL", Bytes;
    /// `CKA_APPLICATION`
    Application = 0x0010, "CKA_APPLICATION", Bytes;
    /// `CKA_VALUE`
    Value = 0x0011, "CKA_VALUE", Bytes;
    /// `CKA_OBJECT_ID`
    ObjectId = 0x0012, "CKA_OBJECT_ID", Bytes;
    /// `CKA_CERTIFICATE_TYPE`
    CertificateType = 0x0080, "CKA_CERTIFICATE_TYPE", Ulong;
    /// `CKA_ISSUER`
    Issuer = 0x0081, "CKA_ISSUER", Bytes;
    /// `CKA_SERIAL_NUMBER`
    SerialNumber = 0x0082, "CKA_SERIAL_NUMBER", Bytes;
    /// `CKA_TRUSTED`
    Trusted = 0x0086, "CKA_TRUSTED", Bool;
    /// `CKA_CHECK_VALUE`
    CheckValue = 0x0090, "CKA_CHECK_VALUE", Bytes;
    /// `CKA_KEY_TYPE`
    KeyType = 0x0100, "CKA_KEY_TYPE", Ulong;
    /// `CKA_SUBJECT`
    Subject = 0x0101, "CKA_SUBJECT", Bytes;
    /// `CKA_ID`
    Id = 0x0102, "CKA_ID", Bytes;
    /// `CKA_SENSITIVE`
    Sensitive = 0x0103, "CKA_SENSITIVE", Bool;
    /// `CKA_ENCRYPT`
    Encrypt = 0x0104, "CKA_ENCRYPT", Bool;
    /// `CKA_DECRYPT`
    Decrypt = 0x0105, "CKA_DECRYPT", Bool;
    /// `CKA_WRAP`
    Wrap = 0x0106, "CKA_WRAP", Bool;
    /// `CKA_UNWRAP`
    Unwrap = 0x0107, "CKA_UNWRAP", Bool;
    /// `CKA_SIGN`
    Sign = 0x0108, "CKA_SIGN", Bool;
    /// `CKA_SIGN_RECOVER`
    SignRecover = 0x0109, "CKA_SIGN_RECOVER", Bool;
    /// `CKA_VERIFY`
    Verify = 0x010A, "CKA_VERIFY", Bool;
    /// `CKA_VERIFY_RECOVER`
    VerifyRecover = 0x010B, "CKA_VERIFY_RECOVER", Bool;
    /// `CKA_DERIVE`
    Derive = 0x010C, "CKA_DERIVE", Bool;
    /// `CKA_START_DATE`
    StartDate = 0x0110, "CKA_START_DATE", Date;
    /// `CKA_END_DATE`
    EndDate = 0x0111, "CKA_END_DATE", Date;
    /// `CKA_MODULUS`
    Modulus = 0x0120, "CKA_MODULUS", Bytes;
    /// `CKA_MODULUS_BITS`
    ModulusBits = 0x0121, "CKA_MODULUS_BITS", Ulong;
    /// `CKA_PUBLIC_EXPONENT`
    PublicExponent = 0x0122, "CKA_PUBLIC_EXPONENT", Bytes;
    /// `CKA_PUBLIC_KEY_INFO` (DER SubjectPublicKeyInfo)
    PublicKeyInfo = 0x0129, "CKA_PUBLIC_KEY_INFO", Bytes;
    /// `CKA_VALUE_LEN`
    ValueLen = 0x0161, "CKA_VALUE_LEN", Ulong;
    /// `CKA_EXTRACTABLE`
    Extractable = 0x0162, "CKA_EXTRACTABLE", Bool;
    /// `CKA_LOCAL`
    Local = 0x0163, "CKA_LOCAL", Bool;
    /// `CKA_NEVER_EXTRACTABLE`
    NeverExtractable = 0x0164, "CKA_NEVER_EXTRACTABLE", Bool;
    /// `CKA_ALWAYS_SENSITIVE`
    AlwaysSensitive = 0x0165, "CKA_ALWAYS_SENSITIVE", Bool;
    /// `CKA_KEY_GEN_MECHANISM`
    KeyGenMechanism = 0x0166, "CKA_KEY_GEN_MECHANISM", Ulong;
    /// `CKA_MODIFIABLE`
    Modifiable = 0x0170, "CKA_MODIFIABLE", Bool;
    /// `CKA_COPYABLE`
    Copyable = 0x0171, "CKA_COPYABLE", Bool;
    /// `CKA_DESTROYABLE`
    Destroyable = 0x0172, "CKA_DESTROYABLE", Bool;
    /// `CKA_EC_PARAMS` (DER: the curve's OID)
    EcParams = 0x0180, "CKA_EC_PARAMS", Bytes;
    /// `CKA_EC_POINT` (DER OCTET STRING of the public point)
    EcPoint = 0x0181, "CKA_EC_POINT", Bytes;
    /// `CKA_ALWAYS_AUTHENTICATE`
    AlwaysAuthenticate = 0x0202, "CKA_ALWAYS_AUTHENTICATE", Bool;
    /// `CKA_WRAP_WITH_TRUSTED`
    WrapWithTrusted = 0x0210, "CKA_WRAP_WITH_TRUSTED", Bool;
    /// `CKA_WRAP_TEMPLATE` (`CKF_ARRAY_ATTRIBUTE | 0x211`)
    WrapTemplate = 0x4000_0211, "CKA_WRAP_TEMPLATE", Template;
    /// `CKA_UNWRAP_TEMPLATE` (`CKF_ARRAY_ATTRIBUTE | 0x212`)
    UnwrapTemplate = 0x4000_0212, "CKA_UNWRAP_TEMPLATE", Template;
}

impl From<AttributeType> for u64 {
    fn from(ty: AttributeType) -> u64 {
        ty.code()
    }
}

impl TryFrom<u64> for AttributeType {
    type Error = HsmError;

    fn try_from(code: u64) -> Result<Self> {
        Self::from_code(code).ok_or_else(|| HsmError::AttributeTypeInvalid(format!("{code:#x}")))
    }
}

impl fmt::Display for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ck_name())
    }
}

impl AttributeType {
    /// The longest byte value this attribute accepts.
    fn max_len(self) -> usize {
        match self {
            Self::Label | Self::Id => MAX_INDEXED_ATTRIBUTE_LEN,
            Self::Value => MAX_VALUE_LEN,
            _ => MAX_BYTES_ATTRIBUTE_LEN,
        }
    }
}

/// An attribute's value. Byte values are zeroized on drop.
///
/// `Debug` shows only the length of byte values, so a template holding a `CKA_VALUE` cannot
/// leak it into a log; [`Attribute`]'s `Debug` shows non-secret bytes in hex.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeValue {
    /// `CK_BBOOL`
    Bool(bool),
    /// `CK_ULONG`
    Ulong(u64),
    /// A byte array (or a `CK_DATE`)
    Bytes(Vec<u8>),
    /// An attribute array
    Template(Vec<Attribute>),
}

impl Drop for AttributeValue {
    fn drop(&mut self) {
        if let Self::Bytes(bytes) = self {
            bytes.zeroize();
        }
    }
}

impl fmt::Debug for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "Bool({b})"),
            Self::Ulong(n) => write!(f, "Ulong({n:#x})"),
            Self::Bytes(bytes) => write!(f, "Bytes(<{} bytes>)", bytes.len()),
            Self::Template(attrs) => f.debug_tuple("Template").field(attrs).finish(),
        }
    }
}

fn wrong_kind(ty: AttributeType, want: &str) -> HsmError {
    HsmError::AttributeValueInvalid(format!("{} must be {want}", ty.ck_name()))
}

impl AttributeValue {
    /// The value as a `CK_BBOOL`; `ty` names the attribute in the error.
    pub fn as_bool(&self, ty: AttributeType) -> Result<bool> {
        match self {
            Self::Bool(b) => Ok(*b),
            _ => Err(wrong_kind(ty, "a boolean")),
        }
    }

    /// The value as a `CK_ULONG`; `ty` names the attribute in the error.
    pub fn as_ulong(&self, ty: AttributeType) -> Result<u64> {
        match self {
            Self::Ulong(n) => Ok(*n),
            _ => Err(wrong_kind(ty, "an unsigned integer")),
        }
    }

    /// The value as bytes; `ty` names the attribute in the error.
    pub fn as_bytes(&self, ty: AttributeType) -> Result<&[u8]> {
        match self {
            Self::Bytes(bytes) => Ok(bytes),
            _ => Err(wrong_kind(ty, "a byte array")),
        }
    }

    /// The value as an attribute array; `ty` names the attribute in the error.
    pub fn as_template(&self, ty: AttributeType) -> Result<&[Attribute]> {
        match self {
            Self::Template(attrs) => Ok(attrs),
            _ => Err(wrong_kind(ty, "an attribute array")),
        }
    }

    /// The value PKCS#11 reports for an attribute of this kind that holds nothing: an empty
    /// array, `false`, or `CK_UNAVAILABLE_INFORMATION`.
    pub fn empty_of(kind: ValueKind) -> Self {
        match kind {
            ValueKind::Bool => Self::Bool(false),
            ValueKind::Ulong => Self::Ulong(CK_UNAVAILABLE_INFORMATION),
            ValueKind::Bytes | ValueKind::Date => Self::Bytes(Vec::new()),
            ValueKind::Template => Self::Template(Vec::new()),
        }
    }
}

/// One attribute: a type and its value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub ty: AttributeType,
    pub value: AttributeValue,
}

impl fmt::Debug for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            // CKA_VALUE may be key material: it is shown by length only.
            AttributeValue::Bytes(bytes) if self.ty != AttributeType::Value => {
                write!(f, "{}=0x", self.ty.ck_name())?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            value => write!(f, "{}={value:?}", self.ty.ck_name()),
        }
    }
}

impl Attribute {
    /// A boolean attribute.
    pub fn bool(ty: AttributeType, value: bool) -> Self {
        Self { ty, value: AttributeValue::Bool(value) }
    }

    /// An unsigned-integer attribute.
    pub fn ulong(ty: AttributeType, value: u64) -> Self {
        Self { ty, value: AttributeValue::Ulong(value) }
    }

    /// A byte-array attribute.
    pub fn bytes(ty: AttributeType, value: impl Into<Vec<u8>>) -> Self {
        Self { ty, value: AttributeValue::Bytes(value.into()) }
    }

    /// An attribute-array attribute.
    pub fn template(ty: AttributeType, value: Vec<Attribute>) -> Self {
        Self { ty, value: AttributeValue::Template(value) }
    }

    /// The value as a boolean, or `AttributeValueInvalid` naming the attribute.
    pub fn as_bool(&self) -> Result<bool> {
        self.value.as_bool(self.ty)
    }

    /// The value as an unsigned integer, or `AttributeValueInvalid` naming the attribute.
    pub fn as_ulong(&self) -> Result<u64> {
        self.value.as_ulong(self.ty)
    }

    /// The value as bytes, or `AttributeValueInvalid` naming the attribute.
    pub fn as_bytes(&self) -> Result<&[u8]> {
        self.value.as_bytes(self.ty)
    }

    /// The value as an attribute array, or `AttributeValueInvalid` naming the attribute.
    pub fn as_template(&self) -> Result<&[Attribute]> {
        self.value.as_template(self.ty)
    }

    /// Checks that the value has the shape and size the attribute type requires. Nested
    /// templates are checked one level deep and may not nest further.
    pub fn check_value(&self) -> Result<()> {
        self.check_value_at(0)
    }

    fn check_value_at(&self, depth: usize) -> Result<()> {
        match self.ty.kind() {
            ValueKind::Bool => self.as_bool().map(drop),
            ValueKind::Ulong => self.as_ulong().map(drop),
            ValueKind::Bytes => {
                let len = self.as_bytes()?.len();
                if len > self.ty.max_len() {
                    return Err(HsmError::AttributeValueInvalid(format!(
                        "{} is {len} bytes, longer than the {} allowed",
                        self.ty.ck_name(),
                        self.ty.max_len()
                    )));
                }
                Ok(())
            }
            ValueKind::Date => {
                let date = self.as_bytes()?;
                if date.is_empty() || (date.len() == 8 && date.iter().all(u8::is_ascii_digit)) {
                    Ok(())
                } else {
                    Err(HsmError::AttributeValueInvalid(format!(
                        "{} must be empty or eight digits YYYYMMDD",
                        self.ty.ck_name()
                    )))
                }
            }
            ValueKind::Template => {
                let nested = self.as_template()?;
                if depth > 0 {
                    return Err(HsmError::AttributeValueInvalid(format!(
                        "{} cannot appear inside another attribute array",
                        self.ty.ck_name()
                    )));
                }
                if nested.len() > MAX_TEMPLATE_ATTRIBUTES {
                    return Err(HsmError::AttributeValueInvalid(format!(
                        "{} holds more than {MAX_TEMPLATE_ATTRIBUTES} attributes",
                        self.ty.ck_name()
                    )));
                }
                nested.iter().try_for_each(|a| a.check_value_at(depth + 1))?;
                dedup(nested).map(drop)
            }
        }
    }
}

/// Checks every value, then collapses repeated attributes: repeating an attribute with the
/// same value is harmless, with a different value it is `TemplateInconsistent`.
pub(crate) fn dedup(attrs: &[Attribute]) -> Result<BTreeMap<AttributeType, &AttributeValue>> {
    let mut seen: BTreeMap<AttributeType, &AttributeValue> = BTreeMap::new();
    for attr in attrs {
        if let Some(previous) = seen.insert(attr.ty, &attr.value)
            && *previous != attr.value
        {
            return Err(HsmError::TemplateInconsistent(format!(
                "{} appears twice with different values",
                attr.ty.ck_name()
            )));
        }
    }
    Ok(seen)
}

/// A caller's attribute list, as PKCS#11 passes it (`CK_ATTRIBUTE_PTR`, count): ordered, and
/// possibly repeating an attribute. The rules in [`crate::template`] validate it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Template {
    attrs: Vec<Attribute>,
}

impl Template {
    /// An empty template.
    pub fn new() -> Self {
        Self::default()
    }

    /// This template with one more attribute (builder style).
    pub fn with(mut self, attr: Attribute) -> Self {
        self.attrs.push(attr);
        self
    }

    /// Appends an attribute.
    pub fn push(&mut self, attr: Attribute) {
        self.attrs.push(attr);
    }

    /// The first value given for `ty`, if any.
    pub fn get(&self, ty: AttributeType) -> Option<&AttributeValue> {
        self.attrs.iter().find(|a| a.ty == ty).map(|a| &a.value)
    }

    /// Whether the template names `ty`.
    pub fn contains(&self, ty: AttributeType) -> bool {
        self.attrs.iter().any(|a| a.ty == ty)
    }

    /// The attributes in the caller's order.
    pub fn iter(&self) -> std::slice::Iter<'_, Attribute> {
        self.attrs.iter()
    }

    /// The attributes in the caller's order.
    pub fn as_slice(&self) -> &[Attribute] {
        &self.attrs
    }

    /// Number of attributes (repeats included).
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// Whether the template is empty.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// Checks every value's shape and size and that no attribute is given twice with different
    /// values; returns the attributes by type.
    pub fn validate(&self) -> Result<BTreeMap<AttributeType, &AttributeValue>> {
        if self.attrs.len() > MAX_TEMPLATE_ATTRIBUTES {
            return Err(HsmError::AttributeValueInvalid(format!(
                "a template holds at most {MAX_TEMPLATE_ATTRIBUTES} attributes"
            )));
        }
        self.attrs.iter().try_for_each(Attribute::check_value)?;
        dedup(&self.attrs)
    }
}

impl From<Vec<Attribute>> for Template {
    fn from(attrs: Vec<Attribute>) -> Self {
        Self { attrs }
    }
}

impl FromIterator<Attribute> for Template {
    fn from_iter<I: IntoIterator<Item = Attribute>>(iter: I) -> Self {
        Self { attrs: iter.into_iter().collect() }
    }
}

impl<'a> IntoIterator for &'a Template {
    type Item = &'a Attribute;
    type IntoIter = std::slice::Iter<'a, Attribute>;

    fn into_iter(self) -> Self::IntoIter {
        self.attrs.iter()
    }
}

/// An object's complete attribute set, one value per type, in `CKA_*` code order.
///
/// It behaves as a map from type to value and serialises as one (in code order). Inside, flags
/// are bits and the other values one sorted vector: a key has about twenty flags, and a table
/// of a million keys would otherwise spend most of its memory on map nodes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Bit `i` set: the attribute with index `i` holds a boolean.
    bools_present: u64,
    /// Bit `i`: that boolean's value.
    bools: u64,
    /// Every non-boolean value, sorted by type, one per type.
    others: Vec<(AttributeType, AttributeValue)>,
}

static TRUE: AttributeValue = AttributeValue::Bool(true);
static FALSE: AttributeValue = AttributeValue::Bool(false);

const _: () = assert!(AttributeType::ALL.len() <= 64, "one bit per attribute type");

impl AttributeType {
    /// This type's bit in [`Attributes`]' flag words (its position in code order).
    fn bit(self) -> u64 {
        1u64 << (self as u32)
    }
}

impl Attributes {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, ty: AttributeType) -> std::result::Result<usize, usize> {
        self.others.binary_search_by(|(t, _)| t.cmp(&ty))
    }

    /// The value of `ty`, if the object has it.
    pub fn get(&self, ty: AttributeType) -> Option<&AttributeValue> {
        if self.bools_present & ty.bit() != 0 {
            return Some(if self.bools & ty.bit() != 0 { &TRUE } else { &FALSE });
        }
        self.position(ty).ok().map(|i| &self.others[i].1)
    }

    /// Whether the object has `ty`.
    pub fn contains(&self, ty: AttributeType) -> bool {
        self.get(ty).is_some()
    }

    /// Sets `ty`, returning the previous value.
    pub fn set(&mut self, ty: AttributeType, value: AttributeValue) -> Option<AttributeValue> {
        let previous = self.remove(ty);
        match value {
            AttributeValue::Bool(b) => {
                self.bools_present |= ty.bit();
                if b {
                    self.bools |= ty.bit();
                }
            }
            other => {
                // `remove` left no entry, so this is always the insertion point.
                let at = self.position(ty).unwrap_or_else(|at| at);
                self.others.insert(at, (ty, other));
            }
        }
        previous
    }

    /// Removes `ty`, returning its value.
    pub fn remove(&mut self, ty: AttributeType) -> Option<AttributeValue> {
        if self.bools_present & ty.bit() != 0 {
            let value = self.bools & ty.bit() != 0;
            self.bools_present &= !ty.bit();
            self.bools &= !ty.bit();
            return Some(AttributeValue::Bool(value));
        }
        self.position(ty).ok().map(|i| self.others.remove(i).1)
    }

    /// `Some(b)` if `ty` holds a boolean.
    pub fn bool(&self, ty: AttributeType) -> Option<bool> {
        (self.bools_present & ty.bit() != 0).then(|| self.bools & ty.bit() != 0)
    }

    /// Whether `ty` is present and true (an absent flag is false, as PKCS#11 reads it).
    pub fn flag(&self, ty: AttributeType) -> bool {
        self.bools_present & self.bools & ty.bit() != 0
    }

    /// `Some(n)` if `ty` holds an unsigned integer.
    pub fn ulong(&self, ty: AttributeType) -> Option<u64> {
        match self.get(ty) {
            Some(AttributeValue::Ulong(n)) => Some(*n),
            _ => None,
        }
    }

    /// `Some(bytes)` if `ty` holds bytes.
    pub fn bytes(&self, ty: AttributeType) -> Option<&[u8]> {
        match self.get(ty) {
            Some(AttributeValue::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    /// `Some(attrs)` if `ty` holds an attribute array.
    pub fn template(&self, ty: AttributeType) -> Option<&[Attribute]> {
        match self.get(ty) {
            Some(AttributeValue::Template(t)) => Some(t),
            _ => None,
        }
    }

    /// The attributes in code order.
    pub fn iter(&self) -> impl Iterator<Item = (AttributeType, &AttributeValue)> {
        let mut others = self.others.iter().peekable();
        AttributeType::ALL.iter().filter_map(move |&ty| match self.bool(ty) {
            Some(b) => Some((ty, if b { &TRUE } else { &FALSE })),
            None => others.next_if(|(t, _)| *t == ty).map(|(t, v)| (*t, v)),
        })
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.bools_present.count_ones() as usize + self.others.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every attribute of `template` is present here with an equal value (the match
    /// of `C_FindObjects`).
    pub fn matches(&self, template: &Template) -> bool {
        template.iter().all(|a| self.get(a.ty) == Some(&a.value))
    }

    /// Releases spare capacity (a table holds many sets for a long time).
    pub fn shrink_to_fit(&mut self) {
        self.others.shrink_to_fit();
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|(ty, value)| Attribute { ty, value: value.clone() })).finish()
    }
}

impl Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (ty, value) in self.iter() {
            map.serialize_entry(&ty, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct AttributesVisitor;
        impl<'de> serde::de::Visitor<'de> for AttributesVisitor {
            type Value = Attributes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of PKCS#11 attributes")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> std::result::Result<Attributes, M::Error> {
                let mut attrs = Attributes::new();
                // Flags need no room in the vector; about a third of an object's attributes do not.
                attrs.others.reserve(map.size_hint().unwrap_or(0).min(MAX_TEMPLATE_ATTRIBUTES) / 2);
                while let Some((ty, value)) = map.next_entry::<AttributeType, AttributeValue>()? {
                    if attrs.set(ty, value).is_some() {
                        return Err(serde::de::Error::custom(format!("{} appears twice", ty.ck_name())));
                    }
                }
                attrs.shrink_to_fit();
                Ok(attrs)
            }
        }
        deserializer.deserialize_map(AttributesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_sorted() {
        for (i, ty) in AttributeType::ALL.iter().enumerate() {
            assert_eq!(AttributeType::from_code(ty.code()), Some(*ty));
            assert!(ty.ck_name().starts_with("CKA_"));
            if i > 0 {
                assert!(AttributeType::ALL[i - 1].code() < ty.code(), "{ty}");
            }
        }
        assert_eq!(AttributeType::ALL.len(), 46);
        assert_eq!(AttributeType::Label.code(), 3);
        assert_eq!(AttributeType::UnwrapTemplate.code(), 0x4000_0212);
        assert_eq!(AttributeType::from_code(0x9999), None);
    }

    #[test]
    fn serialises_as_code() {
        let bytes = postcard::to_allocvec(&AttributeType::Id).expect("serialise");
        assert_eq!(bytes, postcard::to_allocvec(&0x102u64).expect("serialise"));
        let back: AttributeType = postcard::from_bytes(&bytes).expect("deserialise");
        assert_eq!(back, AttributeType::Id);
        let unknown = postcard::to_allocvec(&0x9999u64).expect("serialise");
        assert!(postcard::from_bytes::<AttributeType>(&unknown).is_err());
    }

    #[test]
    fn debug_never_prints_value_bytes() {
        let secret = Attribute::bytes(AttributeType::Value, vec![0xAB; 4]);
        let shown = format!("{secret:?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
        assert_eq!(format!("{:?}", Attribute::bytes(AttributeType::Label, *b"k")), "CKA_LABEL=0x6b");
    }

    #[test]
    fn accessors_name_the_attribute() {
        let attr = Attribute::ulong(AttributeType::Sign, 1);
        let err = attr.as_bool().err();
        assert!(matches!(&err, Some(HsmError::AttributeValueInvalid(m)) if m.contains("CKA_SIGN")));
        assert_eq!(attr.as_ulong().ok(), Some(1));
        assert!(attr.as_bytes().is_err() && attr.as_template().is_err());
    }

    #[test]
    fn values_are_checked_for_shape_and_size() {
        assert!(Attribute::bool(AttributeType::Label, true).check_value().is_err());
        assert!(Attribute::bytes(AttributeType::Label, vec![0; 1025]).check_value().is_err());
        assert!(Attribute::bytes(AttributeType::StartDate, *b"20250101").check_value().is_ok());
        assert!(Attribute::bytes(AttributeType::StartDate, *b"2025-1-1").check_value().is_err());
        let nested = Attribute::template(
            AttributeType::UnwrapTemplate,
            vec![Attribute::template(AttributeType::WrapTemplate, vec![])],
        );
        assert!(nested.check_value().is_err());
        let twice = Template::new()
            .with(Attribute::bool(AttributeType::Sign, true))
            .with(Attribute::bool(AttributeType::Sign, false));
        assert!(matches!(twice.validate(), Err(HsmError::TemplateInconsistent(_))));
        let same = Template::new()
            .with(Attribute::bool(AttributeType::Sign, true))
            .with(Attribute::bool(AttributeType::Sign, true));
        assert_eq!(same.validate().map(|m| m.len()).ok(), Some(1));
    }

    #[test]
    fn attributes_behave_as_a_map_and_serialise_as_one() {
        let mut attrs = Attributes::new();
        let mut map = BTreeMap::new();
        let entries = [
            Attribute::bytes(AttributeType::Label, *b"k"),
            Attribute::bool(AttributeType::Sign, true),
            Attribute::ulong(AttributeType::Class, 4),
            Attribute::bool(AttributeType::Token, false),
            Attribute::template(
                AttributeType::UnwrapTemplate,
                vec![Attribute::bool(AttributeType::Sign, true)],
            ),
        ];
        for Attribute { ty, value } in entries.iter().cloned() {
            assert!(attrs.set(ty, value.clone()).is_none());
            map.insert(ty, value);
        }
        assert_eq!(attrs.len(), 5);
        let order: Vec<AttributeType> = attrs.iter().map(|(ty, _)| ty).collect();
        assert_eq!(order, map.keys().copied().collect::<Vec<_>>(), "code order");
        assert_eq!(
            postcard::to_allocvec(&attrs).expect("serialise"),
            postcard::to_allocvec(&map).expect("serialise"),
            "the same bytes as a BTreeMap"
        );
        let back: Attributes =
            postcard::from_bytes(&postcard::to_allocvec(&attrs).expect("ser")).expect("de");
        assert_eq!(back, attrs);
        assert!(attrs.flag(AttributeType::Sign));
        assert_eq!(attrs.bool(AttributeType::Token), Some(false));
        assert!(!attrs.flag(AttributeType::Token) && !attrs.flag(AttributeType::Verify));
        assert_eq!(attrs.bool(AttributeType::Verify), None);
        // A value of another shape replaces a flag, and back.
        assert_eq!(
            attrs.set(AttributeType::Sign, AttributeValue::Ulong(1)),
            Some(AttributeValue::Bool(true))
        );
        assert_eq!(attrs.bool(AttributeType::Sign), None);
        assert_eq!(attrs.ulong(AttributeType::Sign), Some(1));
        assert_eq!(
            attrs.set(AttributeType::Sign, AttributeValue::Bool(false)),
            Some(AttributeValue::Ulong(1))
        );
        assert_eq!(attrs.get(AttributeType::Sign), Some(&AttributeValue::Bool(false)));
        assert_eq!(attrs.remove(AttributeType::Label), Some(AttributeValue::Bytes(b"k".to_vec())));
        assert_eq!(attrs.remove(AttributeType::Label), None);
        assert_eq!(attrs.len(), 4);
        let template = Template::new().with(Attribute::bool(AttributeType::Sign, false));
        assert!(attrs.matches(&template));
        assert!(!attrs.matches(&template.with(Attribute::bool(AttributeType::Verify, false))));
        let twice =
            postcard::to_allocvec(&vec![(AttributeType::Sign, AttributeValue::Bool(true)); 2]).expect("ser");
        assert!(postcard::from_bytes::<Attributes>(&twice).is_err(), "an attribute appearing twice");
    }
}
