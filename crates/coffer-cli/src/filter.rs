//! Key filters as cloudhsm-cli writes them: `key-reference=0x…` (the key's handle) and
//! `attr.NAME=VALUE` (an attribute the key must have: `attr.label=…`, `attr.id=…`,
//! `attr.key-type=…`, `attr.class=…`, or any name of [`crate::attributes::NAMES`]).

use coffer_proto::v1::Template;

use crate::attributes;
use crate::error::{CliError, Result};

/// A parsed filter, with the text it came from for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFilter {
    /// The filter as typed, e.g. `attr.label=k1 key-reference=0x2`.
    pub text: String,
    /// `key-reference=`, if given.
    pub handle: Option<u64>,
    /// The `attr.*` conditions, as a search template.
    pub template: Template,
}

impl KeyFilter {
    /// Parses `items`; an empty list matches every key the caller can see.
    pub fn parse(items: &[String]) -> Result<Self> {
        let mut handle = None;
        let mut template = Template::default();
        for item in items {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                CliError::bad(format!("filter '{item}' must be key-reference=0x… or attr.NAME=VALUE"))
            })?;
            if key == "key-reference" {
                if handle.replace(parse_reference(value)?).is_some() {
                    return Err(CliError::bad("the filter names key-reference twice"));
                }
            } else if let Some(name) = key.strip_prefix("attr.") {
                let attr = attributes::parse_value(attributes::lookup(name)?, value)?;
                if template.attributes.iter().any(|a| a.r#type == attr.r#type) {
                    return Err(CliError::bad(format!("the filter names attr.{name} twice")));
                }
                template.attributes.push(attr);
            } else {
                return Err(CliError::bad(format!(
                    "filter '{item}': expected key-reference=0x… or attr.NAME=VALUE"
                )));
            }
        }
        Ok(Self { text: items.join(" "), handle, template })
    }

    /// Parses a filter that must select one key: it may not be empty.
    pub fn parse_one(items: &[String], option: &str) -> Result<Self> {
        if items.is_empty() {
            return Err(CliError::bad(format!("{option} is required (e.g. {option} attr.label=NAME)")));
        }
        Self::parse(items)
    }

    /// The one handle among `found` (the keys the template matched) this filter selects.
    pub fn pick(&self, found: &[u64]) -> Result<u64> {
        let candidates: Vec<u64> = match self.handle {
            Some(h) => found.iter().copied().filter(|f| *f == h).collect(),
            None => found.to_vec(),
        };
        match candidates.as_slice() {
            [one] => Ok(*one),
            [] => Err(CliError::NoKeyMatches { filter: self.text.clone() }),
            many => Err(CliError::SeveralKeysMatch { filter: self.text.clone(), count: many.len() }),
        }
    }
}

/// `0x1a` (hex, as cloudhsm-cli prints references) or `26`.
fn parse_reference(text: &str) -> Result<u64> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| CliError::bad(format!("key-reference '{text}' is not a handle (0x… or a number)")))
}

/// How key references are shown: `0x` and 16 hex digits, as cloudhsm-cli does.
pub fn reference(handle: u64) -> String {
    format!("0x{handle:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::{bytes_attr, key_type_attr};
    use coffer_crypto::KeyType;
    use coffer_hsm::AttributeType as A;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn references_and_attributes_parse() {
        let f = KeyFilter::parse(&strings(&["attr.label=k1", "attr.key-type=aes", "key-reference=0x1f"]))
            .unwrap();
        assert_eq!(f.handle, Some(0x1f));
        assert_eq!(f.template.attributes, vec![bytes_attr(A::Label, *b"k1"), key_type_attr(KeyType::Aes)]);
        assert_eq!(f.text, "attr.label=k1 attr.key-type=aes key-reference=0x1f");
        assert_eq!(KeyFilter::parse(&strings(&["key-reference=31"])).unwrap().handle, Some(31));
        assert_eq!(reference(0x1f), "0x000000000000001f");
        assert_eq!(
            KeyFilter::parse(&strings(&[&format!("key-reference={}", reference(9))])).unwrap().handle,
            Some(9)
        );
    }

    #[test]
    fn malformed_filters_say_why() {
        let e = |items: &[&str]| KeyFilter::parse(&strings(items)).unwrap_err().to_string();
        assert!(e(&["label=k"]).contains("expected key-reference=0x… or attr.NAME=VALUE"));
        assert!(e(&["attr.label"]).contains("must be key-reference"));
        assert!(e(&["key-reference=0xzz"]).contains("is not a handle"));
        assert!(e(&["attr.colour=red"]).contains("unknown attribute 'colour'"));
        assert!(e(&["attr.label=a", "attr.label=b"]).contains("twice"));
        assert!(
            KeyFilter::parse_one(&[], "--key-filter")
                .unwrap_err()
                .to_string()
                .contains("--key-filter is required")
        );
    }

    #[test]
    fn pick_needs_exactly_one_match() {
        let f = KeyFilter::parse(&strings(&["attr.label=k"])).unwrap();
        assert_eq!(f.pick(&[5]).unwrap(), 5);
        assert_eq!(f.pick(&[]).unwrap_err().to_string(), "no key matches the filter attr.label=k");
        assert!(matches!(f.pick(&[1, 2]), Err(CliError::SeveralKeysMatch { count: 2, .. })));
        let f = KeyFilter::parse(&strings(&["attr.label=k", "key-reference=2"])).unwrap();
        assert_eq!(f.pick(&[1, 2]).unwrap(), 2);
        assert!(matches!(f.pick(&[1, 3]), Err(CliError::NoKeyMatches { .. })));
    }
}
