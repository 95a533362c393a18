//! The console's one-time login token, its sessions and their CSRF tokens.
//!
//! The URL printed at start carries a token that can be used once: opening it sets an
//! HttpOnly, SameSite=Strict cookie naming a session held in this process's memory only. Every
//! form carries the session's CSRF token. Nothing here is written to disk, so restarting the
//! console ends every session.

use std::collections::HashMap;
use std::sync::Mutex;

use subtle::ConstantTimeEq;
use tsunagu_proto::v1::Staff;

/// The name of the session cookie.
pub const COOKIE: &str = "tsunagu_console";

/// How many sessions are kept at most (one person opening the URL in a few browsers).
const MAX_SESSIONS: usize = 16;

/// A random token of 244 bits (two UUID v4s from the operating system's generator), as hex.
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// The token every form of this session carries.
    pub csrf: String,
    /// Who is acting, recorded with every write (asserted, never trusted by the hub).
    pub staff: Staff,
}

/// The login token and the sessions it opened.
#[derive(Debug)]
pub struct Sessions {
    login: Mutex<Option<String>>,
    sessions: Mutex<HashMap<String, Session>>,
    default_staff: Staff,
}

impl Sessions {
    /// Sessions whose login token is `login`; new sessions act as `default_staff`.
    pub fn new(login: String, default_staff: Staff) -> Self {
        Sessions {
            login: Mutex::new(Some(login)),
            sessions: Mutex::new(HashMap::new()),
            default_staff,
        }
    }

    /// Spends the login token: a new session's id when `token` is the token not yet used.
    pub fn log_in(&self, token: &str) -> Option<String> {
        let mut login = self.login.lock().unwrap_or_else(|e| e.into_inner());
        match login.as_deref() {
            Some(expected) if same_secret(expected, token) => {
                *login = None;
            }
            _ => return None,
        }
        drop(login);
        let id = random_token();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.clear();
        }
        sessions.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                staff: self.default_staff.clone(),
            },
        );
        Some(id)
    }

    /// The session a cookie value names.
    pub fn get(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .iter()
            .find(|(known, _)| same_secret(known, id))
            .map(|(_, session)| session.clone())
    }

    /// Changes who acts in a session.
    pub fn set_staff(&self, id: &str, staff: Staff) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = sessions.get_mut(id) {
            session.staff = staff;
        }
    }

    /// Ends a session.
    pub fn log_out(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff() -> Staff {
        Staff {
            name: "担当者".into(),
            role: "保健師".into(),
        }
    }

    #[test]
    fn the_login_token_opens_one_session_only() {
        let sessions = Sessions::new("secret".into(), staff());
        assert!(sessions.log_in("wrong").is_none());
        let id = sessions.log_in("secret").expect("first use");
        assert!(sessions.log_in("secret").is_none(), "the token is spent");
        let session = sessions.get(&id).expect("session");
        assert_eq!(session.csrf.len(), 64);
        assert_eq!(session.staff.role, "保健師");
        sessions.log_out(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        assert_ne!(random_token(), random_token());
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
