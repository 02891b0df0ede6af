//! `ldap_account` as the playbook writes it and as it renders: the YAML type, the rendered
//! parameters, their checks (entry name and `mail` limits, AD's sAMAccountName, the ownership
//! attribute), the outputs and the one-line description.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diag::Diagnostic;
use crate::escape;
use crate::load::Step;
use crate::model::Tpl;
use crate::plan::Renderer;
use crate::yaml::{OneOrMany, OrderedMap, Spanned};

/// Creates a directory entry for the hire. Its DN is `RDN=VALUE,BASE`, where VALUE is the
/// rendered `attributes[RDN]`, escaped as RFC 4514 requires.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapAccount {
    /// Parent entry (template), e.g. `ou=people,dc=example,dc=org`.
    pub base: Tpl,
    /// Naming attribute. Default `uid`.
    #[serde(default = "default_rdn")]
    pub rdn: Spanned<String>,
    /// Object classes, e.g. `[inetOrgPerson, posixAccount, shadowAccount]`.
    pub object_classes: Vec<Spanned<String>>,
    /// Attributes (name: template or list of templates). Must include the `rdn` attribute.
    pub attributes: OrderedMap<Spanned<String>, OneOrMany<Tpl>>,
    /// POSIX numbers: uidNumber allocated from a range at run time.
    pub posix: Option<Posix>,
    /// The initial password: generated at run time, never written anywhere.
    #[serde(default)]
    pub password: Password,
    /// The attribute that records which hire owns the entry: onboard writes the hire id there
    /// in the same add, and adopts an existing entry only when it carries this hire's id.
    /// Default `employeeNumber` (in inetOrgPerson and AD's user).
    pub owner_attribute: Option<Spanned<String>>,
}

/// The default [`LdapAccount::owner_attribute`].
pub const OWNER_ATTRIBUTE: &str = "employeeNumber";

fn default_rdn() -> Spanned<String> {
    Spanned {
        value: "uid".into(),
        span: crate::diag::Span {
            file: crate::diag::FileId(0),
            line: 0,
            col: 0,
            len: 0,
        },
        verbatim: false,
    }
}

/// uidNumber/gidNumber for POSIX accounts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Posix {
    /// Lowest uidNumber to allocate.
    pub uid_min: u32,
    /// Highest uidNumber to allocate.
    pub uid_max: u32,
    /// Primary group number.
    pub gid_number: u32,
}

/// How the initial password is made and delivered.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Password {
    /// Characters; at least 12. Default 20.
    #[serde(default = "default_password_length")]
    pub length: u32,
    /// Require a change at first login, where the server supports it. Default true.
    #[serde(default = "default_true")]
    pub must_change: bool,
    /// Who receives it: shown to the `operator`, or mailed to the `manager`. Default `operator`.
    #[serde(default)]
    pub deliver: Deliver,
}

impl Default for Password {
    fn default() -> Self {
        Password {
            length: default_password_length(),
            must_change: true,
            deliver: Deliver::Operator,
        }
    }
}

fn default_password_length() -> u32 {
    20
}

fn default_true() -> bool {
    true
}

/// Who receives the initial password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Deliver {
    /// Shown once on the operator's terminal.
    #[default]
    Operator,
    /// Sent to `hire.manager_email` in a separate message.
    Manager,
}

impl Deliver {
    pub fn as_str(self) -> &'static str {
        match self {
            Deliver::Operator => "operator",
            Deliver::Manager => "manager",
        }
    }
}

impl std::fmt::Display for Deliver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PosixParams {
    pub uid_min: u32,
    pub uid_max: u32,
    pub gid_number: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PasswordParams {
    pub length: u32,
    pub must_change: bool,
    pub deliver: Deliver,
}

/// The rendered parameters of an `ldap_account` step.
#[derive(Debug, Clone, Serialize)]
pub struct AccountParams {
    pub dn: String,
    /// The attribute holding the id of the hire who owns the entry (among `attributes`).
    pub owner: String,
    pub rdn: String,
    pub object_classes: Vec<String>,
    pub attributes: Vec<Attribute>,
    pub posix: Option<PosixParams>,
    pub password: PasswordParams,
}

/// The outputs an `ldap_account` step makes (`steps.ID.NAME`).
pub const OUTPUTS: &[&str] = &["dn", "login", "uid_number"];

/// The outputs known when planning, and those known only after the step runs.
pub fn outputs(p: &AccountParams, known: &mut BTreeMap<String, String>, later: &mut Vec<String>) {
    known.insert("dn".into(), p.dn.clone());
    let login = login(&p.attributes, &p.rdn).map(|(_, v)| v.to_owned());
    known.insert("login".into(), login.unwrap_or_default());
    if p.posix.is_some() {
        later.push("uid_number".into());
    }
}

/// The parameters as `name: value` lines for people.
pub fn fields(p: &AccountParams) -> Vec<(String, String)> {
    let mut out = vec![
        ("dn".to_owned(), p.dn.clone()),
        ("objectClass".to_owned(), p.object_classes.join(", ")),
    ];
    for a in &p.attributes {
        out.push((a.name.clone(), a.values.join(" | ")));
    }
    if let Some(x) = &p.posix {
        out.push(("gidNumber".to_owned(), x.gid_number.to_string()));
    }
    let change = if p.password.must_change {
        ", must change at first login"
    } else {
        ""
    };
    out.push((
        "password".to_owned(),
        format!(
            "{} random characters, delivered to the {}{change}",
            p.password.length, p.password.deliver
        ),
    ));
    out
}

/// One line saying what the step would do.
pub fn describe(p: &AccountParams) -> String {
    let dn = &p.dn;
    match &p.posix {
        Some(x) => format!(
            "create directory entry {dn} (uidNumber from {}–{}), set an initial password",
            x.uid_min, x.uid_max
        ),
        None => format!("create directory entry {dn}, set an initial password"),
    }
}

/// The longest entry name (`attr=value`, escaped, in bytes) onboard creates: back-mdb, the
/// OpenLDAP default, refuses longer RDNs (measured on slapd 2.5: 245 bytes with `cn=`).
const RDN_MAX_BYTES: usize = 240;

/// Renders an `ldap_account` step: its DN, attributes (with the ownership attribute), and
/// checks of what the directory would refuse.
pub(crate) fn render(r: &mut Renderer<'_>, step: &Step, a: &LdapAccount) -> Option<AccountParams> {
    let base = r.line(&a.base, "`base`");
    if let Err(p) = escape::check_dn(&base) {
        r.fail(Diagnostic::new(format!("`base` is not a DN: {p}")).at(a.base.span));
    }
    let mut attributes = render_attributes(r, a);
    let owner = owner_attribute(r, a, &mut attributes);
    let dn = entry_dn(r, step, a, &attributes, &base);
    check_settings(r, step, a);
    Some(AccountParams {
        dn,
        owner,
        rdn: a.rdn.value.clone(),
        object_classes: a.object_classes.iter().map(|c| c.value.clone()).collect(),
        attributes,
        posix: a.posix.as_ref().map(|p| PosixParams {
            uid_min: p.uid_min,
            uid_max: p.uid_max,
            gid_number: p.gid_number,
        }),
        password: PasswordParams {
            length: a.password.length,
            must_change: a.password.must_change,
            deliver: a.password.deliver,
        },
    })
}

/// Renders each attribute's values, with the checks a directory would make of them.
fn render_attributes(r: &mut Renderer<'_>, a: &LdapAccount) -> Vec<Attribute> {
    let mut attributes = Vec::new();
    for (name, values) in &a.attributes.0 {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || name.is_empty() {
            r.fail(
                Diagnostic::new(format!("`{}` is not an attribute name", name.value)).at(name.span),
            );
        }
        let mut rendered = Vec::new();
        for v in &values.0 {
            let value = r.line(v, &format!("attribute `{}`", name.value));
            if name.eq_ignore_ascii_case("sAMAccountName")
                && let Err(problem) = sam_account_name(&value)
            {
                r.fail(
                        Diagnostic::new(format!(
                            "sAMAccountName `{value}` {problem}"
                        ))
                        .at(v.span)
                        .hint("Active Directory logins are at most 20 characters, without \" / \\ [ ] : ; | = , + * ? < > @; change how the playbook builds it"),
                    );
            }
            if name.eq_ignore_ascii_case("mail") && !value.is_ascii() {
                r.fail(
                        Diagnostic::new(format!(
                            "attribute `mail` is `{value}`; the directory's `mail` holds \
                             ASCII addresses only (IA5String, RFC 4524: LDAP 21)"
                        ))
                        .at(v.span)
                        .hint("give the directory an ASCII address (e.g. `{{ hire.work_email | ascii }}` or a separate field)"),
                    );
            }
            let chars = value.chars().count();
            if chars > 256
                && (["uid", "mail"].iter().any(|n| name.eq_ignore_ascii_case(n))
                    || name.eq_ignore_ascii_case(&a.rdn))
            {
                r.fail(
                    Diagnostic::new(format!(
                        "attribute `{}` renders to {chars} characters; directory \
                             schemas allow 256 (RFC 4519)",
                        name.value
                    ))
                    .at(v.span)
                    .hint("shorten it in the playbook, e.g. build the login from initials"),
                );
            }
            if !value.is_empty() {
                rendered.push(value);
            }
        }
        let values = rendered;
        attributes.push(Attribute {
            name: name.value.clone(),
            values,
        });
    }
    attributes
}

/// The entry's DN: `RDN=VALUE,BASE` with VALUE escaped, and the name's limits checked.
fn entry_dn(
    r: &mut Renderer<'_>,
    step: &Step,
    a: &LdapAccount,
    attributes: &[Attribute],
    base: &str,
) -> String {
    let rdn_value = attributes
        .iter()
        .find(|at| at.name.eq_ignore_ascii_case(&a.rdn))
        .map(|at| at.values.clone());
    match rdn_value.as_deref() {
        Some([v]) => {
            let rdn = format!("{}={}", a.rdn.value, escape::dn_value(v));
            if rdn.len() > RDN_MAX_BYTES {
                r.fail(
                        Diagnostic::new(format!(
                            "the entry's name `{}=…` is {} bytes; OpenLDAP's database \
                             (back-mdb) stores names of at most {RDN_MAX_BYTES} (longer \
                             ones fail with LDAP 80), so onboard refuses them everywhere",
                            a.rdn.value,
                            rdn.len()
                        ))
                        .at_opt(attribute_span(a, &a.rdn))
                        .hint("name the entry by a shorter attribute (e.g. `rdn: uid`), or shorten the value"),
                    );
            }
            format!("{rdn},{base}")
        }
        Some(_) => {
            r.fail(
                Diagnostic::new(format!(
                    "the naming attribute `{}` must have exactly one non-empty value",
                    a.rdn.value
                ))
                .at_opt(attribute_span(a, &a.rdn)),
            );
            String::new()
        }
        None => {
            r.fail(
                Diagnostic::new(format!(
                    "`attributes` has no `{}`, the naming attribute (`rdn`)",
                    a.rdn.value
                ))
                .at(step.id.span)
                .hint(format!(
                    "add `{}:` under `attributes`, or set `rdn`",
                    a.rdn.value
                )),
            );
            String::new()
        }
    }
}

/// Where the playbook names attribute `name` (case-insensitive), if it does.
fn attribute_span(a: &LdapAccount, name: &str) -> Option<crate::diag::Span> {
    a.attributes
        .0
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, _)| n.span)
}

/// Object classes, the uidNumber range, the password's length and recipient.
fn check_settings(r: &mut Renderer<'_>, step: &Step, a: &LdapAccount) {
    if a.object_classes.is_empty() {
        r.fail(
            Diagnostic::new("`object_classes` is empty")
                .at(step.id.span)
                .hint("e.g. [inetOrgPerson, posixAccount, shadowAccount]"),
        );
    }
    if let Some(p) = &a.posix
        && p.uid_min > p.uid_max
    {
        r.fail(Diagnostic::new("`posix.uid_min` is greater than `posix.uid_max`").at(step.id.span));
    }
    if a.password.length < 12 || a.password.length > 128 {
        r.fail(
            Diagnostic::new(format!(
                "`password.length` is {}; it must be from 12 to 128",
                a.password.length
            ))
            .at(step.id.span),
        );
    }
    if a.password.deliver == Deliver::Manager
        && r.pb
            .hire
            .as_ref()
            .is_some_and(|h| h.manager_email.is_none())
    {
        r.fail(
            Diagnostic::new(
                "the password goes to the manager, but the hire has no `manager_email`",
            )
            .at(step.id.span)
            .hint("add `manager_email` to the hire, or deliver to the operator"),
        );
    }
}

/// Adds the ownership attribute (the hire id) to the account's attributes, and returns its
/// name. A playbook that sets it itself must set it to the hire id.
fn owner_attribute(
    r: &mut Renderer<'_>,
    a: &LdapAccount,
    attributes: &mut Vec<Attribute>,
) -> String {
    let name = a
        .owner_attribute
        .as_ref()
        .map_or(OWNER_ATTRIBUTE, |o| o.value.as_str())
        .to_owned();
    let id = match &r.pb.hire {
        Some(h) => h.id.as_ref().map(|i| i.value.clone()).unwrap_or_default(),
        None => "(sample)".to_owned(),
    };
    match attributes
        .iter()
        .find(|at| at.name.eq_ignore_ascii_case(&name))
    {
        Some(at) if at.values != [id.clone()] => {
            let span = attribute_span(a, &name);
            r.fail(
                Diagnostic::new(format!(
                    "`{name}` records which hire owns the entry, so onboard sets it to the \
                     hire id ({id}); the playbook sets it to {:?}",
                    at.values
                ))
                .at_opt(span)
                .hint(format!(
                    "remove `{name}` from `attributes`, or name another attribute with \
                     `owner_attribute`"
                )),
            );
        }
        Some(_) => {}
        None => attributes.push(Attribute {
            name: name.clone(),
            values: vec![id],
        }),
    }
    name
}

/// The account's login: the first value of `uid`, else of `sAMAccountName` (Active
/// Directory), else of the naming attribute; with the attribute it came from.
pub fn login<'a>(attributes: &'a [Attribute], rdn: &str) -> Option<(&'a str, &'a str)> {
    ["uid", "sAMAccountName", rdn].iter().find_map(|name| {
        attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .and_then(|a| Some((a.name.as_str(), a.values.first()?.as_str())))
    })
}

/// Active Directory's rules for a pre-Windows 2000 logon name.
fn sam_account_name(value: &str) -> Result<(), crate::diag::Invalid> {
    const REFUSED: &[char] = &[
        '"', '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>', '@',
    ];
    let chars = value.chars().count();
    if chars > 20 {
        return Err(format!("is {chars} characters long; Active Directory allows 20").into());
    }
    if let Some(c) = value.chars().find(|c| REFUSED.contains(c)) {
        return Err(format!("contains `{c}`, which Active Directory does not allow").into());
    }
    if value.ends_with('.') {
        return Err("ends with a full stop, which Active Directory does not allow".into());
    }
    Ok(())
}
