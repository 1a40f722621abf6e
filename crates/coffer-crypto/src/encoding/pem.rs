//! PEM (RFC 7468): base64 between `-----BEGIN label-----` and `-----END label-----` lines.
//!
//! Base64 is not cryptography, but PEM often carries private keys, so the coder here works
//! without secret-dependent branches or table look-ups (the arithmetic of BoringSSL's and
//! libsodium's constant-time base64) and every intermediate buffer is zeroized.

use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};

/// The label of an unencrypted PKCS#8 private key.
pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
/// The label of a SubjectPublicKeyInfo public key.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// Characters per base64 line, as OpenSSL writes them.
const LINE_LEN: usize = 64;

/// Encodes `der` as PEM with `label`. The result holds the key: wrap it in `Zeroizing` when
/// it is a private key (see [`crate::PrivateKey::to_pem`]).
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = Zeroizing::new(base64_encode(der));
    let mut out = String::with_capacity(body.len() + body.len() / LINE_LEN + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in body.as_bytes().chunks(LINE_LEN) {
        // Base64 output is ASCII, one byte per char.
        out.extend(line.iter().map(|&b| char::from(b)));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Decodes the first PEM block of `text`, which must carry `label`. Text before the BEGIN line
/// and after the END line is ignored, as OpenSSL does.
pub fn decode(label: &str, text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut lines = text.lines().map(str::trim);
    let found = lines
        .find_map(|line| line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")))
        .ok_or_else(|| CryptoError::KeyEncodingInvalid("no PEM BEGIN line".into()))?;
    if found != label {
        return Err(CryptoError::KeyEncodingInvalid(wrong_label_message(label, found)));
    }
    let end = format!("-----END {label}-----");
    // Sized up front so that it never reallocates and leaves an unwiped copy behind.
    let mut body = Zeroizing::new(Vec::with_capacity(text.len()));
    for line in lines.by_ref() {
        if line == end {
            return base64_decode(&body);
        }
        if line.contains(':') {
            // RFC 1421 headers (Proc-Type, DEK-Info) mark a legacy encrypted key.
            return Err(CryptoError::KeyEncodingInvalid(
                "encrypted PEM (with headers) is not accepted".into(),
            ));
        }
        body.extend_from_slice(line.as_bytes());
    }
    Err(CryptoError::KeyEncodingInvalid(format!("no PEM END line for {label}")))
}

fn wrong_label_message(wanted: &str, found: &str) -> String {
    let hint = match found {
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" => "; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`",
        "ENCRYPTED PRIVATE KEY" => "; encrypted PKCS#8 is not accepted, decrypt it first",
        "RSA PUBLIC KEY" => "; convert it with `openssl rsa -RSAPublicKey_in -pubout`",
        _ => "",
    };
    format!("PEM label is '{found}', expected '{wanted}'{hint}")
}

/// Maps 0..=63 to its base64 character without branching on the value.
fn encode_sextet(v: u8) -> u8 {
    let v = i16::from(v);
    let mut diff: i16 = 0x41; // 'A'
    diff += ((25 - v) >> 8) & 6; // 26.. -> 'a'
    diff -= ((51 - v) >> 8) & 75; // 52.. -> '0'
    diff -= ((61 - v) >> 8) & 15; // 62 -> '+'
    diff += ((62 - v) >> 8) & 3; // 63 -> '/'
    (v + diff) as u8
}

/// Maps a base64 character to 0..=63, or -1, without branching on the character.
fn decode_char(c: u8) -> i16 {
    let c = i16::from(c);
    let mut ret: i16 = -1;
    ret += (((0x40 - c) & (c - 0x5b)) >> 8) & (c - 64); // A-Z
    ret += (((0x60 - c) & (c - 0x7b)) >> 8) & (c - 70); // a-z
    ret += (((0x2f - c) & (c - 0x3a)) >> 8) & (c + 5); // 0-9
    ret += (((0x2a - c) & (c - 0x2c)) >> 8) & 63; // '+'
    ret += (((0x2e - c) & (c - 0x30)) >> 8) & 64; // '/'
    ret
}

/// Standard base64 with padding.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let sextets =
            [b[0] >> 2, ((b[0] & 3) << 4) | (b[1] >> 4), ((b[1] & 0x0f) << 2) | (b[2] >> 6), b[2] & 0x3f];
        // A chunk of n bytes yields n + 1 characters, then padding.
        for (i, &s) in sextets.iter().enumerate() {
            out.push(if i <= chunk.len() { encode_sextet(s) } else { b'=' });
        }
    }
    // Every byte pushed is a base64 character or '='.
    String::from_utf8(out).unwrap_or_default()
}

/// Strict standard base64: padding required, no characters outside the alphabet, unused
/// bits zero.
pub(crate) fn base64_decode(text: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let bad = |what: &str| CryptoError::KeyEncodingInvalid(format!("PEM body is not valid base64: {what}"));
    if text.is_empty() || !text.len().is_multiple_of(4) {
        return Err(bad("length is not a positive multiple of 4"));
    }
    let padding = text.iter().rev().take_while(|&&c| c == b'=').count();
    if padding > 2 {
        return Err(bad("too much padding"));
    }
    let data = &text[..text.len() - padding];
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3));
    let mut invalid: i16 = 0;
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in data {
        let v = decode_char(c);
        invalid |= v; // negative (all ones in the sign) if any character was invalid
        acc = (acc << 6) | u32::from(v as u8 & 0x3f);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits (2 or 4) must be zero in canonical base64.
    let leftover = acc & ((1 << bits) - 1);
    if invalid < 0 {
        return Err(bad("character outside the alphabet"));
    }
    if leftover != 0 {
        return Err(bad("non-zero padding bits"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10.
    const VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors() {
        for (plain, encoded) in VECTORS {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            if !plain.is_empty() {
                assert_eq!(base64_decode(encoded.as_bytes()).expect("decodes").as_slice(), plain.as_bytes());
            }
        }
    }

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in [all.len(), all.len() - 1, all.len() - 2] {
            let encoded = base64_encode(&all[..len]);
            assert_eq!(base64_decode(encoded.as_bytes()).expect("decodes").as_slice(), &all[..len]);
        }
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (v, &c) in alphabet.iter().enumerate() {
            assert_eq!(encode_sextet(v as u8), c);
            assert_eq!(decode_char(c), v as i16);
        }
        let outside = (0..=255u8).filter(|c| !alphabet.contains(c)).count();
        assert_eq!((0..=255u8).filter(|&c| decode_char(c) < 0).count(), outside);
    }

    #[test]
    fn refuses_malformed_base64() {
        for bad in ["", "Zg=", "Z===", "Zm9v!A==", "Zh==", "Zm9=", "Zg==Zg==", "-_8="] {
            assert!(
                matches!(base64_decode(bad.as_bytes()), Err(CryptoError::KeyEncodingInvalid(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn pem_round_trip_and_line_length() {
        let der: Vec<u8> = (0..100u8).collect();
        let pem = encode(PUBLIC_KEY_LABEL, &der);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= LINE_LEN));
        assert_eq!(decode(PUBLIC_KEY_LABEL, &pem).expect("decodes").as_slice(), der.as_slice());
        // CRLF line ends and text around the block are tolerated.
        let crlf = format!("comment\r\n{}trailer\r\n", pem.replace('\n', "\r\n"));
        assert_eq!(decode(PUBLIC_KEY_LABEL, &crlf).expect("decodes").as_slice(), der.as_slice());
    }

    #[test]
    fn pem_refusals_name_the_problem() {
        let pem = encode("RSA PRIVATE KEY", &[1, 2, 3]);
        match decode(PRIVATE_KEY_LABEL, &pem) {
            Err(CryptoError::KeyEncodingInvalid(m)) => assert!(m.contains("openssl pkcs8"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
        let cases = [
            "no pem here".to_string(),
            "-----BEGIN PUBLIC KEY-----\nAQID\n".to_string(),
            "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\nAQID\n-----END PUBLIC KEY-----\n"
                .to_string(),
            "-----BEGIN PUBLIC KEY-----\nAQ*D\n-----END PUBLIC KEY-----\n".to_string(),
        ];
        for text in cases {
            assert!(
                matches!(decode(PUBLIC_KEY_LABEL, &text), Err(CryptoError::KeyEncodingInvalid(_))),
                "{text:?} was accepted"
            );
        }
    }
}
