//! Just enough DER reading to tell which algorithm and curve a PKCS#8 or SubjectPublicKeyInfo
//! names, and just enough writing to put PKCS#11 key components into those structures.
//! aws-lc parses and checks the key itself; this only routes it, so that an unsupported curve
//! is reported as such rather than as a parse failure.

use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;

fn invalid(what: &str) -> CryptoError {
    CryptoError::KeyEncodingInvalid(format!("malformed DER: {what}"))
}

/// A cursor over DER bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag, without consuming it.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads one element and returns its tag and contents. Definite, minimal lengths only
    /// (DER); high tag numbers are refused (none of the structures read here has one).
    pub(crate) fn read_any(&mut self) -> Result<(u8, &'a [u8])> {
        let (&tag, after_tag) = self.rest.split_first().ok_or_else(|| invalid("truncated element"))?;
        if tag & 0x1f == 0x1f {
            return Err(invalid("high tag numbers are not used here"));
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or_else(|| invalid("truncated length"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(invalid("indefinite or oversized length"));
            }
            if after_len.len() < count {
                return Err(invalid("truncated length"));
            }
            let (len_bytes, rest) = after_len.split_at(count);
            after_len = rest;
            if len_bytes[0] == 0 {
                return Err(invalid("non-minimal length"));
            }
            let len = len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return Err(invalid("non-minimal length"));
            }
            len
        };
        if after_len.len() < len {
            return Err(invalid("element longer than its input"));
        }
        let (contents, rest) = after_len.split_at(len);
        self.rest = rest;
        Ok((tag, contents))
    }

    /// Reads one element that must have `tag`.
    pub(crate) fn read(&mut self, tag: u8, what: &str) -> Result<&'a [u8]> {
        let (found, contents) = self.read_any()?;
        if found != tag {
            return Err(invalid(&format!("expected {what}")));
        }
        Ok(contents)
    }
}

/// Reads `input` as exactly one element with `tag` and returns its contents.
pub(crate) fn read_single<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<&'a [u8]> {
    let mut reader = Reader::new(input);
    let contents = reader.read(tag, what)?;
    if !reader.is_empty() {
        return Err(invalid(&format!("trailing bytes after {what}")));
    }
    Ok(contents)
}

/// One DER element: `tag`, the length, then `parts` one after the other. The buffer is sized
/// once, so a secret among the parts is never left behind in a reallocated copy.
pub(crate) fn element(tag: u8, parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len_bytes = len.to_be_bytes();
    let significant = &len_bytes[len_bytes.iter().take_while(|&&b| b == 0).count()..];
    let mut out = Zeroizing::new(Vec::with_capacity(2 + significant.len() + len));
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// A DER INTEGER holding the unsigned big-endian `magnitude` (leading zeros dropped, one
/// added where the top bit would make it negative).
pub(crate) fn unsigned_integer(magnitude: &[u8]) -> Zeroizing<Vec<u8>> {
    let trimmed = &magnitude[magnitude.iter().take_while(|&&b| b == 0).count()..];
    match trimmed.first() {
        None => element(TAG_INTEGER, &[&[0]]),
        Some(&first) if first & 0x80 != 0 => element(TAG_INTEGER, &[&[0], trimmed]),
        Some(_) => element(TAG_INTEGER, &[trimmed]),
    }
}

/// An AlgorithmIdentifier: the algorithm OID and, when present, a parameter OID (the named
/// curve of an EC key). `params_other` is set when the parameters are present but are neither
/// an OID nor NULL (explicit curve parameters, for instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlgorithmId<'a> {
    pub(crate) oid: &'a [u8],
    pub(crate) param_oid: Option<&'a [u8]>,
    pub(crate) params_other: bool,
}

/// Reads an AlgorithmIdentifier SEQUENCE.
pub(crate) fn read_algorithm<'a>(reader: &mut Reader<'a>) -> Result<AlgorithmId<'a>> {
    let mut inner = Reader::new(reader.read(TAG_SEQUENCE, "an AlgorithmIdentifier")?);
    let oid = inner.read(TAG_OID, "an algorithm OBJECT IDENTIFIER")?;
    let (param_oid, params_other) = match inner.peek_tag() {
        None => (None, false),
        Some(TAG_OID) => (Some(inner.read(TAG_OID, "a parameter OBJECT IDENTIFIER")?), false),
        Some(TAG_NULL) => {
            inner.read(TAG_NULL, "NULL")?;
            (None, false)
        }
        Some(_) => {
            inner.read_any()?;
            (None, true)
        }
    };
    if !inner.is_empty() {
        return Err(invalid("trailing bytes in an AlgorithmIdentifier"));
    }
    Ok(AlgorithmId { oid, param_oid, params_other })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(read_single(&long, TAG_OCTET_STRING, "x").map(<[u8]>::len), Ok(0x80));
        assert_eq!(read_single(&[0x05, 0x00], TAG_NULL, "x"), Ok(&[][..]));
    }

    #[test]
    fn refuses_bad_lengths_and_trailing_bytes() {
        let bad: [&[u8]; 7] = [
            &[],
            &[0x04],
            &[0x04, 0x02, 0x00],                // truncated contents
            &[0x04, 0x80],                      // indefinite length
            &[0x04, 0x81, 0x05, 1, 2, 3, 4, 5], // non-minimal long form
            &[0x04, 0x82, 0x00, 0x81],          // leading zero length byte
            &[0x04, 0x00, 0x00],                // trailing bytes
        ];
        for input in bad {
            assert!(
                matches!(read_single(input, TAG_OCTET_STRING, "x"), Err(CryptoError::KeyEncodingInvalid(_))),
                "{input:02x?}"
            );
        }
        assert!(matches!(read_single(&[0x02, 0x00], TAG_NULL, "x"), Err(CryptoError::KeyEncodingInvalid(_))));
    }

    #[test]
    fn writes_elements_that_read_back() {
        for len in [0usize, 1, 0x7f, 0x80, 0xff, 0x100, 0x1_0000] {
            let content = vec![0xa5u8; len];
            let der = element(TAG_OCTET_STRING, &[&content[..len / 2], &content[len / 2..]]);
            assert_eq!(read_single(&der, TAG_OCTET_STRING, "x"), Ok(&content[..]), "length {len}");
        }
    }

    #[test]
    fn writes_unsigned_integers_minimally() {
        assert_eq!(*unsigned_integer(&[]), [0x02, 0x01, 0x00]);
        assert_eq!(*unsigned_integer(&[0, 0, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(*unsigned_integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(*unsigned_integer(&[0x01, 0x00, 0x01]), [0x02, 0x03, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn reads_algorithm_identifiers() {
        // id-ecPublicKey with prime256v1
        let ec = [
            0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x03, 0x01, 0x07,
        ];
        let alg = read_algorithm(&mut Reader::new(&ec)).expect("parses");
        assert_eq!(alg.oid, &ec[4..11]);
        assert_eq!(alg.param_oid, Some(&ec[13..]));
        // rsaEncryption with NULL parameters
        let rsa = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
        let alg = read_algorithm(&mut Reader::new(&rsa)).expect("parses");
        assert_eq!((alg.param_oid, alg.params_other), (None, false));
        // explicit parameters (a SEQUENCE)
        let explicit = [0x30, 0x0b, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x30, 0x00];
        assert!(read_algorithm(&mut Reader::new(&explicit)).expect("parses").params_other);
    }
}
