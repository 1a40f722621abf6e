//! Passwords: typed at a prompt without echo (twice for a new one), or read from a file or an
//! environment variable; never taken from the command line, where `ps` and shell history would
//! keep them. Held in [`Zeroizing`] buffers and never printed.
//!
//! Single-command mode logs in from `COFFER_ROLE` and `COFFER_PIN=username:password`, as
//! cloudhsm-cli does from `CLOUDHSM_ROLE` and `CLOUDHSM_PIN`.

use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use crate::args::{PasswordArgs, RoleArg};
use crate::error::{CliError, Result};

/// The role variable of single-command mode.
pub const ROLE_ENV: &str = "COFFER_ROLE";
/// The credentials variable of single-command mode: `username:password`.
pub const PIN_ENV: &str = "COFFER_PIN";

/// A password file larger than this is not a password file.
const MAX_PASSWORD_FILE: u64 = 4096;

/// Whether the password exists already (one prompt) or is being chosen (prompt and confirm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Existing,
    New,
}

/// Reads a password from `--password-file`, `--password-env` or, failing both, the terminal.
/// `what` names it in prompts and errors (e.g. "password for alice").
pub fn read_password(args: &PasswordArgs, what: &str, purpose: Purpose) -> Result<Zeroizing<String>> {
    if let Some(path) = &args.password_file {
        return from_file(path);
    }
    if let Some(var) = &args.password_env {
        return from_env(var);
    }
    prompt(what, purpose)
}

/// The first line of `path`, without its line ending.
pub fn from_file(path: &Path) -> Result<Zeroizing<String>> {
    let file = std::fs::File::open(path).map_err(|e| CliError::io("read password file", path, e))?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_PASSWORD_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| CliError::io("read password file", path, e))?;
    if text.len() as u64 > MAX_PASSWORD_FILE {
        return Err(CliError::Password(format!(
            "{} is larger than {MAX_PASSWORD_FILE} bytes; it is not a password file",
            path.display()
        )));
    }
    let line = first_line(&text);
    if line.is_empty() {
        return Err(CliError::Password(format!("{} holds no password on its first line", path.display())));
    }
    Ok(Zeroizing::new(line.to_owned()))
}

fn from_env(var: &str) -> Result<Zeroizing<String>> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Zeroizing::new(value)),
        Ok(_) => Err(CliError::Password(format!("the environment variable {var} is empty"))),
        Err(_) => Err(CliError::Password(format!("the environment variable {var} is not set"))),
    }
}

fn first_line(text: &str) -> &str {
    text.split('\n').next().unwrap_or_default().trim_end_matches('\r')
}

/// Prompts on the terminal (not stdin, which may carry a script) without echo.
fn prompt(what: &str, purpose: Purpose) -> Result<Zeroizing<String>> {
    let no_terminal = |e: std::io::Error| {
        CliError::Password(format!(
            "cannot prompt for the {what} ({e}); give --password-file FILE or --password-env VAR"
        ))
    };
    let first = Zeroizing::new(rpassword::prompt_password(format!("Enter {what}: ")).map_err(no_terminal)?);
    if first.is_empty() {
        return Err(CliError::Password(format!("the {what} is empty")));
    }
    if purpose == Purpose::New {
        let again =
            Zeroizing::new(rpassword::prompt_password(format!("Confirm {what}: ")).map_err(no_terminal)?);
        if *again != *first {
            return Err(CliError::Password(format!("the two entries of the {what} differ")));
        }
    }
    Ok(first)
}

/// Credentials for single-command mode.
#[derive(Debug)]
pub struct EnvCredentials {
    pub role: RoleArg,
    pub username: String,
    pub password: Zeroizing<String>,
}

/// Reads `COFFER_ROLE` and `COFFER_PIN` through `get` (`std::env::var` in the binary). Neither
/// set: `None`. One without the other, or a malformed value: an error that says which.
pub fn env_credentials(get: impl Fn(&str) -> Option<String>) -> Result<Option<EnvCredentials>> {
    let role = get(ROLE_ENV);
    let pin = get(PIN_ENV).map(Zeroizing::new);
    let (role, pin) = match (role, pin) {
        (None, None) => return Ok(None),
        (Some(role), Some(pin)) => (role, pin),
        (Some(_), None) => return Err(CliError::Password(format!("{ROLE_ENV} is set but {PIN_ENV} is not"))),
        (None, Some(_)) => return Err(CliError::Password(format!("{PIN_ENV} is set but {ROLE_ENV} is not"))),
    };
    let role = match role.as_str() {
        "admin" => RoleArg::Admin,
        "crypto-user" => RoleArg::CryptoUser,
        other => {
            return Err(CliError::Password(format!(
                "{ROLE_ENV} is '{other}'; expected admin or crypto-user"
            )));
        }
    };
    let Some((username, password)) = pin.split_once(':') else {
        return Err(CliError::Password(format!("{PIN_ENV} must be username:password")));
    };
    if username.is_empty() || password.is_empty() {
        return Err(CliError::Password(format!("{PIN_ENV} must be username:password, both non-empty")));
    }
    Ok(Some(EnvCredentials {
        role,
        username: username.to_owned(),
        password: Zeroizing::new(password.to_owned()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn creds(vars: &[(&str, &str)]) -> Result<Option<EnvCredentials>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        env_credentials(|k| map.get(k).cloned())
    }

    #[test]
    fn pin_splits_at_the_first_colon() {
        let c = creds(&[(ROLE_ENV, "crypto-user"), (PIN_ENV, "alice:pa:ss")]).unwrap().unwrap();
        assert_eq!(
            (c.role, c.username.as_str(), c.password.as_str()),
            (RoleArg::CryptoUser, "alice", "pa:ss")
        );
        assert!(creds(&[]).unwrap().is_none());
    }

    #[test]
    fn bad_credentials_say_what_is_wrong_without_the_password() {
        let e = creds(&[(PIN_ENV, "alice:secret1")]).unwrap_err().to_string();
        assert!(e.contains("COFFER_ROLE is not") && !e.contains("secret1"), "{e}");
        let e = creds(&[(ROLE_ENV, "root"), (PIN_ENV, "alice:secret1")]).unwrap_err().to_string();
        assert!(e.contains("'root'") && !e.contains("secret1"), "{e}");
        let e = creds(&[(ROLE_ENV, "admin"), (PIN_ENV, "secret1")]).unwrap_err().to_string();
        assert!(e.contains("username:password") && !e.contains("secret1"), "{e}");
        assert!(creds(&[(ROLE_ENV, "admin"), (PIN_ENV, "alice:")]).is_err());
    }

    #[test]
    fn a_password_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret-pass\r\nignored\n").unwrap();
        assert_eq!(from_file(&path).unwrap().as_str(), "s3cret-pass");
        std::fs::write(&path, "\n").unwrap();
        assert!(from_file(&path).unwrap_err().to_string().contains("no password"));
        std::fs::write(&path, vec![b'a'; 5000]).unwrap();
        assert!(from_file(&path).unwrap_err().to_string().contains("larger than"));
        let missing = from_file(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(missing.starts_with("read password file "), "{missing}");
    }

    #[test]
    fn sources_are_tried_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "from-file\n").unwrap();
        let args = PasswordArgs { password_file: Some(path), password_env: None };
        assert_eq!(read_password(&args, "password", Purpose::New).unwrap().as_str(), "from-file");
        let args = PasswordArgs {
            password_file: None,
            password_env: Some("COFFER_CLI_TEST_SURELY_UNSET_VARIABLE".into()),
        };
        let e = read_password(&args, "password", Purpose::Existing).unwrap_err().to_string();
        assert!(e.contains("is not set"), "{e}");
    }
}
