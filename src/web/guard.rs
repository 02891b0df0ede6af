//! Who is signed in, and the limits on signing in: sessions (in memory: a restart signs
//! everyone out), their CSRF tokens, and the count of failed sign-ins per account and per
//! address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// What a signed-in person may do. One person may hold several roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// IT staff: the board, hires, sign-offs, reports.
    It,
    /// HR: the board, hires, previews.
    Hr,
    /// Auditors: the board, hires, reports.
    Audit,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::It, Role::Hr, Role::Audit];

    pub fn name(self) -> &'static str {
        match self {
            Role::It => "it",
            Role::Hr => "hr",
            Role::Audit => "audit",
        }
    }
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct User {
    /// As they signed in (`uid`).
    pub login: String,
    /// Their name as the directory gives it (`cn`), as they sign.
    pub name: String,
    pub roles: Vec<Role>,
    /// The form token for this session.
    pub csrf: String,
    /// Seconds since the epoch.
    pub expires: i64,
}

impl User {
    pub fn may(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// The sessions, by the SHA-256 of their cookie (so a memory dump holds no usable cookie).
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, User>>);

impl Sessions {
    /// Starts a session; returns the cookie value. Expired sessions are dropped here.
    pub fn start(&self, user: User, now: i64) -> String {
        let cookie = crate::secret::random_hex(32);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, u| u.expires > now);
        map.insert(crate::digest::sha256(&cookie), user);
        cookie
    }

    pub fn get(&self, cookie: &str, now: i64) -> Option<User> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&crate::digest::sha256(cookie))
            .filter(|u| u.expires > now)
            .cloned()
    }

    pub fn end(&self, cookie: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&crate::digest::sha256(cookie));
    }
}

/// How many failed sign-ins are allowed in [`WINDOW`] seconds, per account and per address.
pub const PER_ACCOUNT: usize = 5;
pub const PER_ADDRESS: usize = 20;
pub const WINDOW: i64 = 15 * 60;

/// Failed sign-ins in the last [`WINDOW`], per account and per address.
#[derive(Default)]
pub struct Attempts(Mutex<Failures>);

#[derive(Default)]
struct Failures {
    account: HashMap<String, Vec<i64>>,
    address: HashMap<IpAddr, Vec<i64>>,
}

/// Whether a sign-in may be tried.
#[derive(Debug, PartialEq, Eq)]
pub enum Allowed {
    Yes,
    /// Too many failures: may try again in this many seconds.
    WaitSeconds(i64),
}

impl Attempts {
    pub fn allowed(&self, account: &str, address: IpAddr, now: i64) -> Allowed {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let account = account.to_lowercase();
        let a = recent(f.account.entry(account).or_default(), now);
        let b = recent(f.address.entry(address).or_default(), now);
        let wait = |times: &Vec<i64>, limit: usize| {
            (times.len() >= limit).then(|| times[times.len() - limit] + WINDOW - now)
        };
        match (wait(&a, PER_ACCOUNT), wait(&b, PER_ADDRESS)) {
            (None, None) => Allowed::Yes,
            (x, y) => Allowed::WaitSeconds(x.unwrap_or(0).max(y.unwrap_or(0)).max(1)),
        }
    }

    /// Counts a failure; returns how many the account now has in the window.
    pub fn failed(&self, account: &str, address: IpAddr, now: i64) -> usize {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.address.entry(address).or_default().push(now);
        let times = f.account.entry(account.to_lowercase()).or_default();
        times.push(now);
        recent(times, now).len()
    }
}

/// Drops failures older than the window; returns those left.
fn recent(times: &mut Vec<i64>, now: i64) -> Vec<i64> {
    times.retain(|t| now - t < WINDOW);
    times.clone()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_the_account_then_the_address_for_the_window() {
        let attempts = Attempts::default();
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        for n in 1..=PER_ACCOUNT {
            assert_eq!(attempts.allowed("Tom", here, 100), Allowed::Yes);
            assert_eq!(attempts.failed("tom", here, 100), n);
        }
        assert_eq!(
            attempts.allowed("TOM", here, 100),
            Allowed::WaitSeconds(WINDOW)
        );
        // Another account from the same address may still try, until the address's limit.
        assert_eq!(attempts.allowed("tina", here, 100), Allowed::Yes);
        for _ in PER_ACCOUNT..PER_ADDRESS {
            attempts.failed("someone", here, 200);
        }
        assert!(matches!(
            attempts.allowed("tina", here, 200),
            Allowed::WaitSeconds(_)
        ));
        // After the window, both may try again.
        assert_eq!(attempts.allowed("tom", here, 200 + WINDOW), Allowed::Yes);
    }

    #[test]
    fn sessions_expire_and_end() {
        let sessions = Sessions::default();
        let user = User {
            login: "alice".into(),
            name: "Alice Admin".into(),
            roles: vec![Role::It],
            csrf: "t".into(),
            expires: 1_000,
        };
        let cookie = sessions.start(user, 0);
        assert_eq!(sessions.get(&cookie, 999).unwrap().login, "alice");
        assert!(sessions.get(&cookie, 1_000).is_none());
        assert!(sessions.get("other", 0).is_none());
        sessions.end(&cookie);
        assert!(sessions.get(&cookie, 0).is_none());
    }

    #[test]
    fn same_compares_whole_values() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
