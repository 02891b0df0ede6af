//! Signing in: a bind against the directory as the person, roles from the groups `[roles]`
//! names. Failures are counted per account and per address, and say nothing about which part
//! was wrong.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Web;
use super::guard::{self, Allowed, Role, User};
use super::page::{cookie, redirect};
use crate::backend::BackendError;
use crate::backend::directory::Directory;
use crate::backend::directory::ldap::LdapDirectory;
use crate::backend::directory::ldif::{EXAMPLE_DIRECTORY, LdifDirectory};
use crate::secret::Secret;

/// The cookie that carries the sign-in form's CSRF token before there is a session.
const PRE: &str = "onboard_signin";

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Serialize)]
struct SignIn<'a> {
    next: &'a str,
    csrf: &'a str,
    error: &'a str,
    login: &'a str,
}

pub async fn form(
    State(web): State<Arc<Web>>,
    Query(q): Query<Next>,
    headers: HeaderMap,
) -> Response {
    if web.viewer(&headers).is_some() {
        return redirect(&safe_next(q.next.as_deref()));
    }
    web.sign_in_page(StatusCode::OK, &safe_next(q.next.as_deref()), "", "")
}

impl Web {
    fn sign_in_page(&self, status: StatusCode, next: &str, error: &str, login: &str) -> Response {
        let csrf = crate::secret::random_hex(16);
        let mut response = self.render(
            status,
            "signin.html",
            "Sign in",
            None,
            SignIn {
                next,
                csrf: &csrf,
                error,
                login,
            },
        );
        response
            .headers_mut()
            .append(header::SET_COOKIE, self.set_cookie(PRE, &csrf, 3600));
        response
    }
}

/// Only a path on this site: never another site (an open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/board".to_owned(),
    }
}

#[derive(Deserialize)]
pub struct Credentials {
    login: String,
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

pub async fn submit(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Credentials>,
) -> Response {
    let expected = cookie(&headers, PRE).unwrap_or_default();
    if expected.is_empty() || !guard::same(&expected, &form.csrf) {
        return web.forbidden(
            "This sign-in form has expired or did not come from this site. Open the sign-in \
             page again.",
            None,
        );
    }
    let next = safe_next(Some(&form.next));
    let login = form.login.trim().to_owned();
    let now = web.now();
    if let Allowed::WaitSeconds(s) = web.attempts.allowed(&login, peer.ip(), now) {
        web.log(&format!(
            "sign-in refused for account {login:?} from {}: too many failed attempts",
            peer.ip()
        ));
        return web.sign_in_page(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            &format!(
                "Too many failed sign-ins. Try again in {} minutes, or ask IT.",
                (s + 59) / 60
            ),
            &login,
        );
    }
    let password = Secret::new(form.password);
    let checked = {
        let web = web.clone();
        let login = login.clone();
        tokio::task::spawn_blocking(move || web.authenticate(&login, &password)).await
    };
    let user = match checked {
        Ok(Ok(Some(user))) => user,
        Ok(Ok(None)) => {
            let n = web.attempts.failed(&login, peer.ip(), now);
            web.log(&format!(
                "sign-in failed for account {login:?} from {} ({n} of {} in {} minutes)",
                peer.ip(),
                guard::PER_ACCOUNT,
                guard::WINDOW / 60
            ));
            return web.sign_in_page(
                StatusCode::UNAUTHORIZED,
                &next,
                "The account or password is not right, or the account may not use these pages.",
                &login,
            );
        }
        Ok(Err(why)) => {
            web.log(&format!(
                "sign-in for {login:?}: the directory failed: {why}"
            ));
            return web.sign_in_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &next,
                "The directory cannot be reached just now. Try again in a minute.",
                &login,
            );
        }
        Err(e) => return web.broken(&e.to_string()),
    };
    web.log(&format!(
        "{} signed in from {} as {}",
        user.login,
        peer.ip(),
        user.roles
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let max_age = web.settings.session_minutes * 60;
    let session = web.sessions.start(user, now);
    let mut response = redirect(&next);
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        web.set_cookie(web.session_cookie(), &session, max_age),
    );
    h.append(header::SET_COOKIE, web.set_cookie(PRE, "", 0));
    response
}

#[derive(Deserialize)]
pub struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    let Some(user) = web.viewer(&headers) else {
        return redirect("/signin");
    };
    if !guard::same(&user.csrf, &form.csrf) {
        return web.forbidden("This form did not come from this site.", Some(&user));
    }
    if let Some(c) = cookie(&headers, web.session_cookie()) {
        web.sessions.end(&c);
    }
    let mut response = redirect("/signin");
    response.headers_mut().append(
        header::SET_COOKIE,
        web.set_cookie(web.session_cookie(), "", 0),
    );
    response.into_response()
}

impl Web {
    /// The person, if `login` and `password` bind and they hold a role.
    fn authenticate(&self, login: &str, password: &Secret) -> Result<Option<User>, String> {
        // An empty password is an unauthenticated bind, which LDAP servers accept.
        if login.is_empty() || password.expose().is_empty() {
            return Ok(None);
        }
        let mut directory: Box<dyn Directory> = match &self.ldap {
            Some(config) => {
                Box::new(LdapDirectory::connect(config.clone(), true).map_err(|e| e.to_string())?)
            }
            None => Box::new(LdifDirectory::read_only(
                &self.state.directory_ldif(),
                EXAMPLE_DIRECTORY,
            )),
        };
        let settings = &self.settings;
        let found = directory
            .find(&settings.users_base, &settings.login_attribute, login)
            .map_err(|e| e.to_string())?;
        let [entry] = found.as_slice() else {
            return Ok(None);
        };
        if !directory
            .check_password(&entry.dn, password)
            .map_err(|e| e.to_string())?
        {
            return Ok(None);
        }
        let mut roles = Vec::new();
        for (role, group) in &settings.roles {
            if member(directory.as_mut(), group, &entry.dn)? {
                roles.push(*role);
            }
        }
        if roles.is_empty() {
            self.log(&format!(
                "{login:?} signed in correctly but is in none of the role groups ({})",
                Role::ALL.map(Role::name).join(", ")
            ));
            return Ok(None);
        }
        let name = ["displayName", "cn"]
            .iter()
            .find_map(|a| entry.get(a).first().cloned())
            .unwrap_or_else(|| login.to_owned());
        Ok(Some(User {
            login: login.to_owned(),
            name,
            roles,
            csrf: crate::secret::random_hex(16),
            expires: self.now() + settings.session_minutes * 60,
        }))
    }
}

/// Whether `dn` is a member of `group` (`member` or `uniqueMember`); a group that does not
/// exist has no members.
fn member(directory: &mut dyn Directory, group: &str, dn: &str) -> Result<bool, String> {
    for attr in ["member", "uniqueMember"] {
        match directory.has_value(group, attr, dn) {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(BackendError::NoSuchObject(_)) => return Ok(false),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/hire/E1")), "/hire/E1");
        assert_eq!(safe_next(Some("//evil.example")), "/board");
        assert_eq!(safe_next(Some("https://evil.example")), "/board");
        assert_eq!(safe_next(Some("/\\evil.example")), "/board");
        assert_eq!(safe_next(None), "/board");
    }
}
