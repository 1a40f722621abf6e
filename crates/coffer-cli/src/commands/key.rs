//! `coffer key …`: generate, list, read and change attributes, share, delete, wrap, unwrap,
//! import and export keys. Keys are token keys unless `--session` says otherwise, and a new
//! key may do nothing until its attributes allow it (`--attributes encrypt=true …`), as in
//! cloudhsm-cli and PKCS#11.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use coffer_crypto::{KeyType, Module};
use coffer_hsm::AttributeType as A;
use coffer_hsm::error::ckr;
use coffer_hsm::{AttributeType, ObjectClass};
use coffer_proto::v1::{
    self as wire, Attribute, FindObjectsRequest, GenerateKeyPairRequest, GenerateKeyRequest,
    GetAttributesRequest, ImportKeyRequest, KeyRequest, KeyUsers, SetAttributesRequest, ShareKeyRequest,
    Template, UnwrapKeyRequest, WrapKeyRequest, attribute_result::Status, import_key_request::Material,
};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::Context;
use crate::args::{
    AttributeArgs, CurveArg, GenerateAsymmetricPair, GenerateSymmetric, ImportCommand, KeyCommand,
    KeyTypeClassArg, PairArgs, UnwrapArgs, WrapArgs, WrapMechanismArg,
};
use crate::attributes::{self, bool_attr, bytes_attr, class_attr, key_type_attr};
use crate::error::{CliError, Result};
use crate::filter::{KeyFilter, reference};
use crate::mechanism::{self, GCM_IV_LEN};

/// The largest key file (PEM or wrapped key) read.
const MAX_KEY_FILE: u64 = 64 * 1024;

pub async fn run(ctx: &mut Context, command: &KeyCommand) -> Result<Value> {
    match command {
        KeyCommand::GenerateSymmetric(g) => generate_symmetric(ctx, g).await,
        KeyCommand::GenerateAsymmetricPair(g) => generate_pair(ctx, g).await,
        KeyCommand::List { filter, verbose } => list(ctx, &KeyFilter::parse(&filter.filter)?, *verbose).await,
        KeyCommand::GetAttribute { filter, attribute } => {
            let handle = resolve(ctx, &filter.filter, "--filter").await?;
            get_attribute(ctx, handle, attributes::lookup(attribute)?).await
        }
        KeyCommand::SetAttribute { filter, name, value } => {
            let attr = attributes::parse_value(attributes::lookup(name)?, value)?;
            let handle = resolve(ctx, &filter.filter, "--filter").await?;
            let template = Some(Template { attributes: vec![attr] });
            ctx.session()
                .await?
                .set_attributes(SetAttributesRequest { session: Vec::new(), handle, template })
                .await?;
            Ok(json!({ "key-reference": reference(handle), "message": "Attribute set successfully" }))
        }
        KeyCommand::Share { filter, username } => share(ctx, &filter.filter, username, true).await,
        KeyCommand::Unshare { filter, username } => share(ctx, &filter.filter, username, false).await,
        KeyCommand::Delete { filter } => {
            let handle = resolve(ctx, &filter.filter, "--filter").await?;
            ctx.session().await?.destroy_object(KeyRequest { session: Vec::new(), handle }).await?;
            Ok(json!({ "key-reference": reference(handle), "message": "Key deleted successfully" }))
        }
        KeyCommand::Wrap(args) => wrap(ctx, args).await,
        KeyCommand::Unwrap(args) => unwrap(ctx, args).await,
        KeyCommand::Import(ImportCommand::Pem { path, label, key_type_class, attributes }) => {
            import_pem(ctx, path, label, *key_type_class, attributes).await
        }
        KeyCommand::ExportPublic { filter, path } => {
            let handle = resolve(ctx, &filter.filter, "--filter").await?;
            let exported =
                ctx.session().await?.export_public_key(KeyRequest { session: Vec::new(), handle }).await?;
            std::fs::write(path, &exported.pem).map_err(|e| CliError::io("write", path, e))?;
            Ok(
                json!({ "key-reference": reference(handle), "path": path.display().to_string(), "pem": exported.pem }),
            )
        }
    }
}

/// The one key `items` selects (`option` names the flag in errors).
pub async fn resolve(ctx: &mut Context, items: &[String], option: &str) -> Result<u64> {
    let filter = KeyFilter::parse_one(items, option)?;
    let found = find(ctx, &filter).await?;
    filter.pick(&found)
}

async fn find(ctx: &mut Context, filter: &KeyFilter) -> Result<Vec<u64>> {
    let request = FindObjectsRequest { session: Vec::new(), template: Some(filter.template.clone()) };
    Ok(ctx.session().await?.find_objects(request).await?.handles)
}

/// The attributes every new key gets from the command line: its label, whether it is a token
/// key, then the caller's `NAME=VALUE` list.
fn new_key_template(label: &str, session: bool, assignments: &[String]) -> Result<Template> {
    let base = vec![bytes_attr(A::Label, label.as_bytes()), bool_attr(A::Token, !session)];
    attributes::template(base, assignments)
}

async fn generate_symmetric(ctx: &mut Context, command: &GenerateSymmetric) -> Result<Value> {
    let (key_type, label, length, attrs) = match command {
        GenerateSymmetric::Aes { label, key_length_bytes, attributes } => {
            (wire::KeyType::Aes, label, *key_length_bytes, attributes)
        }
        GenerateSymmetric::GenericSecret { label, key_length_bytes, attributes } => {
            (wire::KeyType::GenericSecret, label, *key_length_bytes, attributes)
        }
    };
    let request = GenerateKeyRequest {
        session: Vec::new(),
        key_type: key_type as i32,
        length_bytes: length,
        template: Some(new_key_template(label, attrs.session, &attrs.attributes)?),
    };
    let handles = ctx.session().await?.generate_key(request).await?.handles;
    let handle = one_handle(&handles)?;
    Ok(json!({ "key": describe(ctx, handle, attributes_of_new_keys()).await? }))
}

fn curve(arg: CurveArg) -> wire::EcCurve {
    match arg {
        CurveArg::Prime256v1 => wire::EcCurve::P256,
        CurveArg::Secp384r1 => wire::EcCurve::P384,
        CurveArg::Secp521r1 => wire::EcCurve::P521,
        CurveArg::Secp256k1 => wire::EcCurve::Secp256k1,
    }
}

async fn generate_pair(ctx: &mut Context, command: &GenerateAsymmetricPair) -> Result<Value> {
    let (key_type, bits, curve, pair) = match command {
        GenerateAsymmetricPair::Rsa { modulus_size_bits, public_exponent, pair } => {
            if *public_exponent != 65537 {
                return Err(CliError::bad(format!(
                    "--public-exponent {public_exponent}: Coffer generates RSA keys with 65537 only"
                )));
            }
            (wire::KeyType::Rsa, *modulus_size_bits, wire::EcCurve::Unspecified, pair)
        }
        GenerateAsymmetricPair::Ec { curve: c, pair } => (wire::KeyType::Ec, 0, curve(*c), pair),
        GenerateAsymmetricPair::Ed25519 { pair } => {
            (wire::KeyType::Ed25519, 0, wire::EcCurve::Unspecified, pair)
        }
    };
    let PairArgs { public_label, private_label, public_attributes, private_attributes, session } = pair;
    let request = GenerateKeyPairRequest {
        session: Vec::new(),
        key_type: key_type as i32,
        modulus_bits: bits,
        curve: curve as i32,
        public_template: Some(new_key_template(public_label, *session, public_attributes)?),
        private_template: Some(new_key_template(private_label, *session, private_attributes)?),
    };
    let handles = ctx.session().await?.generate_key_pair(request).await?;
    Ok(json!({
        "public_key": describe(ctx, handles.public_handle, attributes_of_new_keys()).await?,
        "private_key": describe(ctx, handles.private_handle, attributes_of_new_keys()).await?,
    }))
}

/// What the output of a new key shows.
fn attributes_of_new_keys() -> &'static [AttributeType] {
    &[
        A::Label,
        A::Id,
        A::Class,
        A::KeyType,
        A::Token,
        A::Sensitive,
        A::Extractable,
        A::ValueLen,
        A::ModulusBits,
        A::EcParams,
    ]
}

fn one_handle(handles: &[u64]) -> Result<u64> {
    match handles {
        [one] => Ok(*one),
        _ => Err(CliError::Hsm {
            ckr: Some(ckr::CKR_GENERAL_ERROR),
            message: format!("the node returned {} handles for one new key", handles.len()),
        }),
    }
}

/// A key as cloudhsm-cli shows one: its reference and the readable attributes among `types`.
async fn describe(ctx: &mut Context, handle: u64, types: &[AttributeType]) -> Result<Value> {
    let attrs = read_attributes(ctx, handle, types).await?;
    Ok(json!({ "key-reference": reference(handle), "attributes": attributes::render_all(&attrs) }))
}

/// The readable values among `types` (sensitive and inapplicable attributes left out).
async fn read_attributes(ctx: &mut Context, handle: u64, types: &[AttributeType]) -> Result<Vec<Attribute>> {
    let request =
        GetAttributesRequest { session: Vec::new(), handle, types: types.iter().map(|t| t.code()).collect() };
    let response = ctx.session().await?.get_attributes(request).await?;
    Ok(response
        .results
        .into_iter()
        .filter(|r| r.status == Status::Value as i32)
        .filter_map(|r| r.attribute)
        .collect())
}

async fn list(ctx: &mut Context, filter: &KeyFilter, verbose: bool) -> Result<Value> {
    let mut handles = find(ctx, filter).await?;
    if let Some(h) = filter.handle {
        handles.retain(|found| *found == h);
    }
    let all: Vec<AttributeType> = attributes::NAMES.iter().map(|(_, t)| *t).collect();
    let types = if verbose { all.as_slice() } else { attributes::SUMMARY };
    let mut keys = Vec::with_capacity(handles.len());
    for handle in &handles {
        let mut key = describe(ctx, *handle, types).await?;
        if verbose {
            let users = ctx
                .session()
                .await?
                .get_key_users(KeyRequest { session: Vec::new(), handle: *handle })
                .await?;
            key["key-info"] = key_info(&users);
        }
        keys.push(key);
    }
    Ok(json!({ "matched_keys": keys, "total_key_count": handles.len() }))
}

fn key_info(users: &KeyUsers) -> Value {
    json!({ "key-owners": [users.owner], "shared-users": users.shared_with })
}

async fn get_attribute(ctx: &mut Context, handle: u64, ty: AttributeType) -> Result<Value> {
    let request = GetAttributesRequest { session: Vec::new(), handle, types: vec![ty.code()] };
    let response = ctx.session().await?.get_attributes(request).await?;
    let name = attributes::name_of(ty);
    let result = response.results.into_iter().find(|r| r.r#type == ty.code());
    let Some(result) = result else {
        return Err(CliError::Hsm {
            ckr: Some(ckr::CKR_GENERAL_ERROR),
            message: format!("the node did not return {name}"),
        });
    };
    match (Status::try_from(result.status), result.attribute) {
        (Ok(Status::Value), Some(attr)) => {
            let mut map = Map::new();
            map.insert(name.to_owned(), attributes::render_value(&attr));
            Ok(json!({ "key-reference": reference(handle), "attributes": map }))
        }
        (Ok(Status::Sensitive), _) => Err(CliError::Hsm {
            ckr: Some(ckr::CKR_ATTRIBUTE_SENSITIVE),
            message: format!("{name} of key {} is sensitive and cannot be read", reference(handle)),
        }),
        _ => Err(CliError::Hsm {
            ckr: Some(ckr::CKR_ATTRIBUTE_TYPE_INVALID),
            message: format!("key {} has no attribute {name}", reference(handle)),
        }),
    }
}

async fn share(ctx: &mut Context, items: &[String], username: &str, sharing: bool) -> Result<Value> {
    let handle = resolve(ctx, items, "--filter").await?;
    let request = ShareKeyRequest { session: Vec::new(), handle, username: username.to_owned() };
    let session = ctx.session().await?;
    let users =
        if sharing { session.share_key(request).await? } else { session.unshare_key(request).await? };
    Ok(json!({ "key-reference": reference(handle), "key-info": key_info(&users) }))
}

async fn wrap(ctx: &mut Context, args: &WrapArgs) -> Result<Value> {
    let wrapping_key = resolve(ctx, &args.wrapping_filter, "--wrapping-filter").await?;
    let key = resolve(ctx, &args.payload_filter, "--payload-filter").await?;
    let request = WrapKeyRequest {
        session: Vec::new(),
        wrapping_key,
        mechanism: Some(mechanism::wrap(args.mechanism, args.hash_function, None)),
        key,
    };
    let wrapped = ctx.session().await?.wrap_key(request).await?;
    let mut out = json!({
        "wrapping-key-reference": reference(wrapping_key),
        "payload-key-reference": reference(key),
    });
    if !wrapped.generated_iv.is_empty() {
        out["iv"] = Value::from(hex::encode(&wrapped.generated_iv));
    }
    match &args.path {
        Some(path) => {
            std::fs::write(path, &wrapped.wrapped).map_err(|e| CliError::io("write", path, e))?;
            out["path"] = Value::from(path.display().to_string());
        }
        None => out["wrapped_key_data"] = Value::from(BASE64.encode(&wrapped.wrapped)),
    }
    Ok(out)
}

/// The class and key type a `--key-type-class` names.
fn class_and_type(arg: KeyTypeClassArg) -> (ObjectClass, KeyType) {
    match arg {
        KeyTypeClassArg::Aes => (ObjectClass::SecretKey, KeyType::Aes),
        KeyTypeClassArg::GenericSecret => (ObjectClass::SecretKey, KeyType::GenericSecret),
        KeyTypeClassArg::RsaPrivate => (ObjectClass::PrivateKey, KeyType::Rsa),
        KeyTypeClassArg::EcPrivate => (ObjectClass::PrivateKey, KeyType::Ec),
        KeyTypeClassArg::Ed25519Private => (ObjectClass::PrivateKey, KeyType::Ed25519),
        KeyTypeClassArg::RsaPublic => (ObjectClass::PublicKey, KeyType::Rsa),
        KeyTypeClassArg::EcPublic => (ObjectClass::PublicKey, KeyType::Ec),
        KeyTypeClassArg::Ed25519Public => (ObjectClass::PublicKey, KeyType::Ed25519),
    }
}

async fn unwrap(ctx: &mut Context, args: &UnwrapArgs) -> Result<Value> {
    let (class, key_type) = class_and_type(args.key_type_class);
    if class == ObjectClass::PublicKey {
        return Err(CliError::bad("--key-type-class: a public key is imported, not unwrapped"));
    }
    let iv = match (args.mechanism, &args.iv) {
        (WrapMechanismArg::AesGcm, Some(iv)) => Some(mechanism::parse_iv(iv, GCM_IV_LEN, "aes-gcm")?),
        (WrapMechanismArg::AesGcm, None) => {
            return Err(CliError::bad("--iv is required to unwrap aes-gcm (key wrap reported it)"));
        }
        (_, Some(_)) => return Err(CliError::bad("--iv is for aes-gcm only")),
        (_, None) => None,
    };
    let wrapped = read_limited(&args.data_path)?;
    let unwrapping_key = resolve(ctx, &args.unwrapping_filter, "--unwrapping-filter").await?;
    let mut template = new_key_template(&args.label, args.attributes.session, &args.attributes.attributes)?;
    template.attributes.insert(0, class_attr(class));
    template.attributes.insert(1, key_type_attr(key_type));
    let request = UnwrapKeyRequest {
        session: Vec::new(),
        unwrapping_key,
        mechanism: Some(mechanism::wrap(args.mechanism, args.hash_function, iv)),
        wrapped: wrapped.to_vec(),
        template: Some(template),
    };
    let handles = ctx.session().await?.unwrap_key(request).await?.handles;
    let handle = one_handle(&handles)?;
    Ok(json!({ "key": describe(ctx, handle, attributes_of_new_keys()).await? }))
}

fn read_limited(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let meta = std::fs::metadata(path).map_err(|e| CliError::io("read", path, e))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(CliError::bad(format!("{} is larger than {MAX_KEY_FILE} bytes", path.display())));
    }
    Ok(Zeroizing::new(std::fs::read(path).map_err(|e| CliError::io("read", path, e))?))
}

/// The key material of a PEM file, checked against `--key-type-class`.
fn pem_material(text: &str, class: ObjectClass, key_type: KeyType) -> Result<Material> {
    let module = Module::power_on();
    module.status()?;
    let (found_type, material) = match class {
        ObjectClass::PrivateKey => {
            let pair = module.private_key_from_pem(text)?;
            (pair.private.key_type(), Material::Pkcs8Der(pair.private.expose_pkcs8_der().to_vec()))
        }
        ObjectClass::PublicKey => {
            let public = module.public_key_from_pem(text)?;
            (public.key_type(), Material::SpkiDer(public.spki_der().to_vec()))
        }
        _ => return Err(CliError::bad("--key-type-class: PEM import takes a private or public key")),
    };
    if found_type != key_type {
        return Err(CliError::bad(format!(
            "the PEM file holds a {} key, not the {} key --key-type-class names",
            attributes::key_type_name(found_type),
            attributes::key_type_name(key_type)
        )));
    }
    Ok(material)
}

async fn import_pem(
    ctx: &mut Context,
    path: &Path,
    label: &str,
    key_type_class: KeyTypeClassArg,
    attrs: &AttributeArgs,
) -> Result<Value> {
    let (class, key_type) = class_and_type(key_type_class);
    if class == ObjectClass::SecretKey {
        return Err(CliError::bad(
            "--key-type-class: a PEM file holds a private or public key, not a secret key",
        ));
    }
    let bytes = read_limited(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::bad(format!("{} is not a PEM file", path.display())))?;
    let material = pem_material(text, class, key_type)?;
    let mut template = new_key_template(label, attrs.session, &attrs.attributes)?;
    template.attributes.insert(0, class_attr(class));
    template.attributes.insert(1, key_type_attr(key_type));
    let request = ImportKeyRequest {
        session: Vec::new(),
        material: Some(material),
        secret_key_type: 0,
        template: Some(template),
    };
    let handles = ctx.session().await?.import_key(request).await?.handles;
    let handle = one_handle(&handles)?;
    Ok(json!({ "key": describe(ctx, handle, attributes_of_new_keys()).await? }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_crypto::{EcCurve, KeySpec};

    #[test]
    fn new_keys_are_token_keys_with_their_label_unless_told() {
        let t = new_key_template("k", false, &["encrypt=true".into()]).unwrap();
        assert_eq!(
            t.attributes,
            vec![bytes_attr(A::Label, *b"k"), bool_attr(A::Token, true), bool_attr(A::Encrypt, true)]
        );
        let t = new_key_template("k", true, &[]).unwrap();
        assert_eq!(t.attributes[1], bool_attr(A::Token, false));
        assert!(new_key_template("k", false, &["nonsense".into()]).is_err());
    }

    #[test]
    fn pem_import_checks_the_declared_type() {
        let module = Module::power_on();
        let pair = module.generate_key_pair(&KeySpec::Ec(EcCurve::P256)).unwrap();
        let private_pem = pair.private.to_pem();
        let m = pem_material(&private_pem, ObjectClass::PrivateKey, KeyType::Ec).unwrap();
        assert!(matches!(m, Material::Pkcs8Der(_)));
        let e = pem_material(&private_pem, ObjectClass::PrivateKey, KeyType::Rsa).unwrap_err();
        assert!(e.to_string().contains("holds a ec key, not the rsa key"), "{e}");
        let m = pem_material(&pair.public.to_pem(), ObjectClass::PublicKey, KeyType::Ec).unwrap();
        assert!(matches!(m, Material::SpkiDer(_)));
        assert!(pem_material("garbage", ObjectClass::PublicKey, KeyType::Ec).is_err());
    }

    #[test]
    fn key_type_classes_map_to_pkcs11() {
        assert_eq!(class_and_type(KeyTypeClassArg::Aes), (ObjectClass::SecretKey, KeyType::Aes));
        assert_eq!(
            class_and_type(KeyTypeClassArg::Ed25519Private),
            (ObjectClass::PrivateKey, KeyType::Ed25519)
        );
        assert_eq!(class_and_type(KeyTypeClassArg::EcPublic), (ObjectClass::PublicKey, KeyType::Ec));
        assert!(one_handle(&[]).is_err() && one_handle(&[1, 2]).is_err());
        assert_eq!(one_handle(&[3]).unwrap(), 3);
    }
}
