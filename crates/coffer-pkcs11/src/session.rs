//! Sessions and login. Each PKCS#11 session has its own node session (so sessions spread
//! over the cluster's nodes); the login is the application's, as PKCS#11 says: `C_Login`
//! logs every open node session in, and sessions opened later are logged in as they open.
//! The PIN is `user:password` (CloudHSM's form); `CKU_USER` is a crypto-user, `CKU_SO` an
//! admin.

use coffer_client::v1;
use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{P11Error, Result, fail};
use crate::state::{Library, Login, SLOT_ID};

fn check_slot(slot: CK_SLOT_ID) -> Result<()> {
    if slot != SLOT_ID {
        return fail(CKR_SLOT_ID_INVALID, format!("no slot {slot}"));
    }
    Ok(())
}

/// `C_OpenSession`.
pub fn open(lib: &Library, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
    check_slot(slot)?;
    if flags & CKF_SERIAL_SESSION == 0 {
        return fail(CKR_SESSION_PARALLEL_NOT_SUPPORTED, "CKF_SERIAL_SESSION must be set");
    }
    let read_write = flags & CKF_RW_SESSION != 0;
    // Held while the session opens, so that a concurrent C_Login or C_Logout cannot miss it.
    let login = lib.login();
    if !read_write && login.as_ref().is_some_and(|l| l.user_type == CKU_SO) {
        return fail(CKR_SESSION_READ_WRITE_SO_EXISTS, "the SO is logged in: read/write sessions only");
    }
    let node = lib.client.open_session()?;
    if let Some(login) = login.as_ref()
        && let Err(e) = login.apply(&node)
    {
        let _closed = node.close();
        return Err(e);
    }
    Ok(lib.add_session(read_write, node))
}

/// `C_CloseSession`: the node session closes, and with it the session's objects.
pub fn close(lib: &Library, session: CK_SESSION_HANDLE) -> Result<()> {
    let s = lib.remove_session(session)?;
    // The PKCS#11 session is gone whatever the node says (it drops idle sessions itself).
    if let Err(e) = s.node().close() {
        crate::log(&format!("closing session {session}: {e}"));
    }
    Ok(())
}

/// `C_CloseAllSessions`.
pub fn close_all(lib: &Library, slot: CK_SLOT_ID) -> Result<()> {
    check_slot(slot)?;
    for s in lib.sessions() {
        // A session closed by another thread meanwhile is not an error here.
        let _gone = close(lib, s.handle);
    }
    // With no session left, the application is logged out (PKCS#11 5.6).
    *lib.login() = None;
    Ok(())
}

/// `C_GetSessionInfo`.
pub fn info(lib: &Library, session: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO> {
    let s = lib.session(session)?;
    let mut flags = CKF_SERIAL_SESSION;
    if s.read_write {
        flags |= CKF_RW_SESSION;
    }
    Ok(CK_SESSION_INFO { slotID: SLOT_ID, state: lib.session_state(&s), flags, ulDeviceError: 0 })
}

/// Splits `user:password`.
fn parse_pin(pin: &[u8]) -> Result<(String, Zeroizing<Vec<u8>>)> {
    let colon = pin.iter().position(|b| *b == b':');
    match colon {
        Some(i) if i > 0 && i + 1 < pin.len() => {
            let user = std::str::from_utf8(&pin[..i])
                .map_err(|_| P11Error::new(CKR_PIN_INCORRECT, "the user name is not UTF-8"))?;
            Ok((user.to_owned(), Zeroizing::new(pin[i + 1..].to_vec())))
        }
        _ => fail(CKR_PIN_INCORRECT, "the PIN is `user:password`"),
    }
}

/// `C_Login`.
pub fn login(lib: &Library, session: CK_SESSION_HANDLE, user_type: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
    let s = lib.session(session)?;
    let role = match user_type {
        CKU_USER => v1::Role::CryptoUser,
        CKU_SO => v1::Role::Admin,
        CKU_CONTEXT_SPECIFIC => {
            return fail(CKR_OPERATION_NOT_INITIALIZED, "no operation needs a context-specific login");
        }
        _ => return fail(CKR_USER_TYPE_INVALID, format!("user type {user_type}")),
    };
    let mut current = lib.login();
    match current.as_ref() {
        Some(l) if l.user_type == user_type => return fail(CKR_USER_ALREADY_LOGGED_IN, "already logged in"),
        Some(_) => return fail(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "another user type is logged in"),
        None => {}
    }
    let sessions = lib.sessions();
    if user_type == CKU_SO && sessions.iter().any(|s| !s.read_write) {
        return fail(CKR_SESSION_READ_ONLY_EXISTS, "close the read-only sessions before the SO logs in");
    }
    let (username, password) = parse_pin(pin)?;
    let new = Login { user_type, username, role, password };
    // The calling session first: a wrong PIN stops here, counted once toward the lockout.
    new.apply(&s.node())?;
    for other in sessions.iter().filter(|o| o.handle != s.handle) {
        if let Err(e) = new.apply(&other.node()) {
            // Leave no session half logged in.
            for undo in &sessions {
                let _logged_out = undo.node().logout();
            }
            return Err(e);
        }
    }
    *current = Some(new);
    Ok(())
}

/// `C_Logout`: every session.
pub fn logout(lib: &Library, session: CK_SESSION_HANDLE) -> Result<()> {
    lib.session(session)?;
    let mut current = lib.login();
    if current.is_none() {
        return fail(CKR_USER_NOT_LOGGED_IN, "not logged in");
    }
    *current = None;
    let mut first_error = None;
    for s in lib.sessions() {
        if let Err(e) = s.node().logout() {
            first_error.get_or_insert(P11Error::from(e));
        }
    }
    match first_error {
        Some(e) if e.rv != CKR_USER_NOT_LOGGED_IN => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_user_colon_password() {
        let (user, password) = parse_pin(b"alice:pa:ss").unwrap();
        assert_eq!((user.as_str(), password.as_slice()), ("alice", &b"pa:ss"[..]));
        for bad in [&b"nocolon"[..], b":password", b"user:", b""] {
            assert_eq!(parse_pin(bad).unwrap_err().rv, CKR_PIN_INCORRECT);
        }
    }
}
