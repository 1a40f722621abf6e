//! `coffer crypto …` and `coffer random`. Binary results are printed base64 (signatures,
//! ciphertext, random bytes) or hex (digests, MACs, IVs), or written raw to `--output-path`.

use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use coffer_proto::v1::{CipherRequest, DigestRequest, GenerateRandomRequest, SignRequest, VerifyRequest};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::Context;
use super::key::resolve;
use crate::args::{CipherArgs, CipherMechanismArg, CryptoCommand, DataArgs, RandomArgs, SignArgs};
use crate::error::{CliError, Result};
use crate::filter::reference;
use crate::mechanism;

/// The most data one command sends in one request; the node's own limit may be lower.
pub const MAX_DATA: u64 = 16 * 1024 * 1024;
/// The largest signature file read.
const MAX_SIGNATURE: u64 = 64 * 1024;

pub async fn run(ctx: &mut Context, command: &CryptoCommand) -> Result<Value> {
    match command {
        CryptoCommand::Sign { sign: args, output_path } => {
            let (key, mechanism, data) = sign_request(ctx, args).await?;
            let request =
                SignRequest { session: Vec::new(), key, mechanism: Some(mechanism), data: data.to_vec() };
            let signature = ctx.session().await?.sign(request).await?.signature;
            let mut out = json!({ "key-reference": reference(key), "signature": BASE64.encode(&signature) });
            if let Some(path) = output_path {
                std::fs::write(path, &signature).map_err(|e| CliError::io("write", path, e))?;
                out["path"] = Value::from(path.display().to_string());
            }
            Ok(out)
        }
        CryptoCommand::Verify { sign: args, signature_path } => {
            let signature = read_file(signature_path, MAX_SIGNATURE)?;
            let (key, mechanism, data) = sign_request(ctx, args).await?;
            let request = VerifyRequest {
                session: Vec::new(),
                key,
                mechanism: Some(mechanism),
                data: data.to_vec(),
                signature: signature.to_vec(),
            };
            ctx.session().await?.verify(request).await?;
            Ok(json!({ "key-reference": reference(key), "message": "Signature verified successfully" }))
        }
        CryptoCommand::Encrypt(args) => cipher(ctx, args, true).await,
        CryptoCommand::Decrypt(args) => cipher(ctx, args, false).await,
        CryptoCommand::Digest { hash_function, data } => {
            let data = read_data(data)?;
            let request =
                DigestRequest { session: Vec::new(), hash: hash_function.wire(), data: data.to_vec() };
            let digest = ctx.session().await?.digest(request).await?.digest;
            Ok(
                json!({ "hash_function": format!("{hash_function:?}").to_lowercase(), "digest": hex::encode(digest) }),
            )
        }
        CryptoCommand::Hmac { key_filter, hash_function, data } => {
            let data = read_data(data)?;
            let key = resolve(ctx, key_filter, "--key-filter").await?;
            let request = SignRequest {
                session: Vec::new(),
                key,
                mechanism: Some(mechanism::hmac(*hash_function)),
                data: data.to_vec(),
            };
            let mac = ctx.session().await?.sign(request).await?.signature;
            Ok(json!({ "key-reference": reference(key), "hmac": hex::encode(mac) }))
        }
    }
}

pub async fn random(ctx: &mut Context, args: &RandomArgs) -> Result<Value> {
    let request = GenerateRandomRequest { session: Vec::new(), length: args.length };
    let data = ctx.session().await?.generate_random(request).await?.data;
    Ok(json!({ "length": data.len(), "data": BASE64.encode(&data) }))
}

async fn sign_request(
    ctx: &mut Context,
    args: &SignArgs,
) -> Result<(u64, coffer_proto::v1::SignMechanism, Zeroizing<Vec<u8>>)> {
    let data = read_data(&args.data)?;
    let (mechanism, data) =
        mechanism::sign_input(args.mechanism, args.hash_function, args.data_type, data.to_vec())?;
    let key = resolve(ctx, &args.key_filter, "--key-filter").await?;
    Ok((key, mechanism, Zeroizing::new(data)))
}

async fn cipher(ctx: &mut Context, args: &CipherArgs, encrypting: bool) -> Result<Value> {
    let what = format!("{:?}", args.mechanism);
    let mut iv = match (&args.iv, args.mechanism.iv_len()) {
        (Some(text), Some(len)) => Some(mechanism::parse_iv(text, len, &what)?),
        (Some(_), None) => return Err(CliError::bad("--iv is for the AES mechanisms only")),
        (None, _) => None,
    };
    // CBC and CTR take the caller's IV; when encrypting without one, the HSM's random
    // generator makes it (GCM generates its own inside the HSM).
    let needs_fresh_iv = matches!(
        args.mechanism,
        CipherMechanismArg::AesCbc | CipherMechanismArg::AesCbcNoPad | CipherMechanismArg::AesCtr
    );
    if iv.is_none() && encrypting && needs_fresh_iv {
        let request = GenerateRandomRequest { session: Vec::new(), length: mechanism::AES_BLOCK as u32 };
        iv = Some(ctx.session().await?.generate_random(request).await?.data);
    }
    let given_iv = iv.clone();
    let mechanism =
        mechanism::cipher(args.mechanism, iv, args.aad.as_deref(), args.hash_function, encrypting)?;
    let data = read_data(&args.data)?;
    let key = resolve(ctx, &args.key_filter, "--key-filter").await?;
    let request = CipherRequest { session: Vec::new(), key, mechanism: Some(mechanism), data: data.to_vec() };
    let session = ctx.session().await?;
    let response =
        if encrypting { session.encrypt(request).await? } else { session.decrypt(request).await? };
    let output = Zeroizing::new(response.data);
    let mut out = json!({ "key-reference": reference(key) });
    let iv = if response.generated_iv.is_empty() { given_iv } else { Some(response.generated_iv) };
    if let Some(iv) = iv {
        out["iv"] = Value::from(hex::encode(iv));
    }
    match &args.output_path {
        Some(path) => {
            std::fs::write(path, output.as_slice()).map_err(|e| CliError::io("write", path, e))?;
            out["path"] = Value::from(path.display().to_string());
        }
        None => out["data"] = Value::from(BASE64.encode(output.as_slice())),
    }
    Ok(out)
}

/// The bytes of `--data-path` or `--data`.
fn read_data(args: &DataArgs) -> Result<Zeroizing<Vec<u8>>> {
    match (&args.data_path, &args.data) {
        (Some(path), _) => read_file(path, MAX_DATA),
        (None, Some(text)) => Ok(Zeroizing::new(text.as_bytes().to_vec())),
        (None, None) => Err(CliError::bad("give --data-path FILE or --data TEXT")),
    }
}

fn read_file(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path).map_err(|e| CliError::io("read", path, e))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| CliError::io("read", path, e))?;
    if bytes.len() as u64 > max {
        return Err(CliError::bad(format!("{} is larger than {max} bytes", path.display())));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_comes_from_a_file_or_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        std::fs::write(&path, b"\x00\x01file").unwrap();
        let args = DataArgs { data_path: Some(path.clone()), data: None };
        assert_eq!(read_data(&args).unwrap().as_slice(), b"\x00\x01file");
        let args = DataArgs { data_path: None, data: Some("text".into()) };
        assert_eq!(read_data(&args).unwrap().as_slice(), b"text");
        assert!(read_data(&DataArgs { data_path: None, data: None }).is_err());
        std::fs::write(&path, vec![0u8; 20]).unwrap();
        assert!(read_file(&path, 10).unwrap_err().to_string().contains("larger than 10 bytes"));
    }
}
