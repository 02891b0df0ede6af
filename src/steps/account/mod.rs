//! `ldap_account`: create the entry, allocate a uidNumber, set and deliver the initial password.

mod deliver;
pub mod spec;

use std::collections::BTreeMap;

use super::{Applied, Check, Ctx, Kind, StepError, StepResult};
use crate::backend::directory::Entry;
use crate::journal::Status;
use crate::load::Step;
use crate::model::Deliver;
use crate::plan::{Outputs, PlannedStep, Renderer};
use crate::secret::generate_password;
use spec::{AccountParams, Attribute, LdapAccount, PasswordParams, PosixParams};

impl Kind for LdapAccount {
    type Params = AccountParams;
    const OUTPUTS: &'static [&'static str] = spec::OUTPUTS;

    fn render(&self, r: &mut Renderer<'_>, step: &Step, _: &Outputs) -> Option<AccountParams> {
        spec::render(r, step, self)
    }

    fn outputs(p: &AccountParams, known: &mut BTreeMap<String, String>, later: &mut Vec<String>) {
        spec::outputs(p, known, later);
    }

    fn describe(p: &AccountParams) -> String {
        spec::describe(p)
    }

    fn fields(p: &AccountParams) -> Vec<(String, String)> {
        spec::fields(p)
    }

    fn check(_: &PlannedStep, p: &AccountParams, ctx: &mut Ctx<'_>) -> StepResult<Check> {
        check(p, ctx)
    }

    fn intent(
        _: &PlannedStep,
        p: &AccountParams,
        ctx: &mut Ctx<'_>,
    ) -> StepResult<BTreeMap<String, String>> {
        intent(p, ctx)
    }

    fn reconcile(
        _: &PlannedStep,
        p: &AccountParams,
        ctx: &mut Ctx<'_>,
    ) -> Option<StepResult<Vec<String>>> {
        Some(reconcile(p, ctx))
    }

    fn apply(
        _: &PlannedStep,
        p: &AccountParams,
        intent: &BTreeMap<String, String>,
        ctx: &mut Ctx<'_>,
    ) -> StepResult<Applied> {
        apply(p, intent, ctx)
    }
}

struct Account<'a> {
    dn: &'a str,
    owner: &'a str,
    rdn: &'a str,
    object_classes: &'a [String],
    attributes: &'a [Attribute],
    posix: Option<&'a PosixParams>,
    password: &'a PasswordParams,
}

fn account(p: &AccountParams) -> Account<'_> {
    let AccountParams {
        dn,
        owner,
        rdn,
        object_classes,
        attributes,
        posix,
        password,
    } = p;
    Account {
        dn,
        owner,
        rdn,
        object_classes,
        attributes,
        posix: posix.as_ref(),
        password,
    }
}

impl Account<'_> {
    fn login(&self) -> String {
        self.login_attribute()
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default()
    }

    /// The attribute holding the login, and the login.
    fn login_attribute(&self) -> Option<(&str, &str)> {
        spec::login(self.attributes, self.rdn)
    }

    /// Where uidNumbers must be unique: the `dc=` suffix of the DN (the whole directory).
    fn suffix(&self) -> String {
        let rdns: Vec<&str> = self.dn.split(',').collect();
        let dc: Vec<&str> = rdns
            .iter()
            .rev()
            .take_while(|r| r.trim().to_ascii_lowercase().starts_with("dc="))
            .copied()
            .collect();
        if dc.is_empty() {
            rdns[1..].join(",")
        } else {
            dc.into_iter().rev().collect::<Vec<_>>().join(",")
        }
    }

    fn outputs(&self, entry: &Entry) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([
            ("dn".to_owned(), self.dn.to_owned()),
            ("login".to_owned(), self.login()),
        ]);
        if let Some(n) = entry.get("uidNumber").first() {
            out.insert("uid_number".into(), n.clone());
        }
        out
    }

    /// Declared values the entry does not have.
    fn drift(&self, entry: &Entry) -> Vec<String> {
        let mut drift = Vec::new();
        for class in self.object_classes {
            if !entry.has_object_class(class) {
                drift.push(format!("objectClass {class} missing"));
            }
        }
        // Active Directory: a disabled account is not a working account.
        if let Some(uac) = entry
            .get("userAccountControl")
            .first()
            .and_then(|v| v.parse::<u32>().ok())
            && uac & 0x2 != 0
        {
            drift.push(format!(
                "the account is disabled (userAccountControl {uac})"
            ));
        }
        for a in self.attributes {
            let have = entry.get(&a.name);
            for v in &a.values {
                if !have.iter().any(|h| h == v) {
                    drift.push(format!("{} is {:?}, the playbook says {v:?}", a.name, have));
                }
            }
        }
        drift
    }
}

/// In the intent of a reapplication of a done account: its password stays.
const KEEPS_PASSWORD: &str = "keeps_password";

/// The journal's intent for this step, if a run started it and did not finish it: it was
/// interrupted, or it failed (perhaps after creating the entry, when the server refused the
/// password). Such an entry is ours but not yet a working account.
fn interrupted<'a>(ctx: &'a Ctx<'_>) -> Option<&'a BTreeMap<String, String>> {
    ctx.prior
        .filter(|p| matches!(p.status, Status::Running | Status::Failed))
        .filter(|p| p.intent.contains_key("dn"))
        .map(|p| &p.intent)
}

/// Whose an existing entry is, from its ownership attribute and this hire's journal.
enum Owner {
    /// This hire's, and this journal created it (done, or a start to finish).
    Ours,
    /// This hire's id, but this journal never created it: another run (another state
    /// directory) did. Adopting it would set and mail a second password.
    OtherRun,
    /// Another hire's.
    Hire(String),
    /// No ownership attribute: made by hand or by another tool.
    NotOnboard,
}

fn owner(a: &Account<'_>, entry: &Entry, ctx: &Ctx<'_>) -> Owner {
    let done = ctx.prior.is_some_and(|p| p.status == Status::Done);
    let started = interrupted(ctx).is_some_and(|i| i.get("dn").is_some_and(|d| d == a.dn));
    match entry.get(a.owner).first() {
        Some(id) if id != ctx.hire_id => Owner::Hire(id.clone()),
        Some(_) if done || started => Owner::Ours,
        Some(_) => Owner::OtherRun,
        // Done before onboard recorded owners: the journal's word is kept, and the missing
        // attribute shows as drift.
        None if done => Owner::Ours,
        None => Owner::NotOnboard,
    }
}

/// The refusal for an entry that is not ours to adopt. Nothing was changed.
fn not_ours(a: &Account<'_>, owner: Owner, hire: &str) -> StepResult<()> {
    let (message, hint) = match owner {
        Owner::Ours => return Ok(()),
        Owner::Hire(other) => (
            format!("{} belongs to hire {other}, not to {hire}", a.dn),
            "two people would share one account: give this hire a different login in the \
             hire file's vars (e.g. with a middle initial)"
                .to_owned(),
        ),
        Owner::OtherRun => (
            format!(
                "{} carries hire {hire}'s id but was created by another run of onboard \
                 (another state directory); this journal has no record of creating it",
                a.dn
            ),
            "run onboard for this hire from the state directory that created the entry; \
             onboard never adopts an entry it cannot show it created"
                .to_owned(),
        ),
        Owner::NotOnboard => (
            format!(
                "{} already exists and was not created by onboard for hire {hire} (it has no {})",
                a.dn, a.owner
            ),
            "another person may have this login: pick a different one in the playbook's vars, \
             or ask a directory admin"
                .to_owned(),
        ),
    };
    Err(StepError::new(message).hint(hint).nothing_done())
}

fn check(p: &AccountParams, ctx: &mut Ctx<'_>) -> StepResult<Check> {
    let a = account(p);
    let mut entry = ctx.directory.read(a.dn)?;
    if entry.is_none()
        && let Some((attr, login)) = a.login_attribute()
        && let Some(other) = ctx.directory.find(&a.suffix(), attr, login)?.first()
    {
        // A login must be unique in the whole directory, not just under `base`.
        if crate::escape::dn_eq(&other.dn, a.dn) {
            // Created a moment ago by another run: whose it is decides, below.
            entry = Some(other.clone());
        } else {
            let whose = match other.get(a.owner).first() {
                Some(id) => format!(", which belongs to hire {id}"),
                None => String::new(),
            };
            return Err(StepError::new(format!(
                "the login {login} is already used by {}{whose}",
                other.dn
            ))
            .hint("pick a different login in the playbook's vars (e.g. add a middle initial)"));
        }
    }
    let Some(entry) = entry else {
        let mut changes = vec![format!("create entry {}", a.dn)];
        if let Some(p) = a.posix {
            changes.push(format!(
                "allocate a uidNumber from {}–{}",
                p.uid_min, p.uid_max
            ));
        }
        changes.push(format!(
            "set an initial password, delivered to the {}",
            a.password.deliver
        ));
        return Ok(Check::ToDo(changes));
    };
    not_ours(&a, owner(&a, &entry, ctx), ctx.hire_id)?;
    if let Some(intent) = interrupted(ctx) {
        return Ok(Check::ToDo(vec![
            match intent.contains_key(KEEPS_PASSWORD) {
                true => format!(
                    "finish applying the attributes of {} again (a previous run started it); its password stays",
                    a.dn
                ),
                false => format!(
                    "finish the creation of {} a previous run started: set a new initial password and deliver it",
                    a.dn
                ),
            },
        ]));
    }
    let drift = a.drift(&entry);
    Ok(Check::Holds {
        outputs: a.outputs(&entry),
        note: (!drift.is_empty()).then_some(super::Note::Drift(drift)),
    })
}

fn intent(p: &AccountParams, ctx: &mut Ctx<'_>) -> StepResult<BTreeMap<String, String>> {
    let a = account(p);
    if a.password.deliver == Deliver::Operator && !ctx.operator.can_show_secret() {
        return Err(StepError::new(
            "the initial password is to be shown to the operator, but there is no terminal",
        )
        .hint("run onboard in a terminal, or set `password.deliver: manager` in the playbook"));
    }
    if let Some(prior) = interrupted(ctx) {
        return Ok(prior.clone());
    }
    let mut intent = BTreeMap::from([("dn".to_owned(), a.dn.to_owned())]);
    // Applied again (`--reapply`) to an account that is done: the journal says so before
    // anything changes, so a resume after a kill also leaves the password the hire may use.
    if ctx.prior.is_some_and(|p| p.status == Status::Done) {
        intent.insert(KEEPS_PASSWORD.into(), "true".into());
        return Ok(intent);
    }
    if let Some(p) = a.posix {
        // Runs on this machine allocate one at a time: the lock is held until the entry with
        // the number exists (`apply` releases it right after the add; threads of one process
        // also never pick the same number, see `TAKEN`).
        let lock = ctx
            .store
            .lock_allocation()
            .map_err(|e| StepError::new(format!("cannot lock uidNumber allocation: {e}")))?;
        ctx.held = Some(lock);
        let n = free_uid_number(ctx, &a, p.uid_min, p.uid_max, &[])?;
        intent.insert("uid_number".into(), n.to_string());
    }
    Ok(intent)
}

/// uidNumbers known to be taken, per directory suffix, in this process: scanned once, then
/// kept up to date by our own allocations, so a cohort does not rescan the directory per hire.
static TAKEN: std::sync::Mutex<BTreeMap<String, std::collections::BTreeSet<u32>>> =
    std::sync::Mutex::new(BTreeMap::new());

fn free_uid_number(
    ctx: &mut Ctx<'_>,
    a: &Account<'_>,
    min: u32,
    max: u32,
    also_taken: &[u32],
) -> StepResult<u32> {
    let suffix = a.suffix();
    let key = format!("{}|{suffix}", ctx.directory.describe());
    let cached = TAKEN.lock().expect("uid cache").contains_key(&key);
    if !cached {
        let used: std::collections::BTreeSet<u32> = ctx
            .directory
            .values(&suffix, "uidNumber")?
            .iter()
            .filter_map(|v| v.parse().ok())
            .collect();
        TAKEN.lock().expect("uid cache").insert(key.clone(), used);
    }
    let mut n = min;
    loop {
        let candidate = {
            let taken = TAKEN.lock().expect("uid cache");
            let used = &taken[&key];
            (n..=max).find(|c| !used.contains(c) && !also_taken.contains(c))
        };
        let Some(candidate) = candidate else {
            return Err(
                StepError::new(format!("no free uidNumber left in {min}–{max}"))
                    .hint("widen `posix.uid_min`/`uid_max` in the playbook"),
            );
        };
        // Another process may have taken it since the scan: ask the directory (an indexed
        // equality search), and remember what we learn.
        let free = ctx
            .directory
            .find(&suffix, "uidNumber", &candidate.to_string())?
            .is_empty();
        TAKEN
            .lock()
            .expect("uid cache")
            .entry(key.clone())
            .or_default()
            .insert(candidate);
        if free {
            return Ok(candidate);
        }
        n = candidate + 1;
    }
}

fn apply(
    p: &AccountParams,
    intent: &BTreeMap<String, String>,
    ctx: &mut Ctx<'_>,
) -> StepResult<Applied> {
    let a = account(p);
    let mut changes = Vec::new();
    // Applied again (`--reapply`) to an account that is done and still there: its attributes
    // are brought to the playbook's, and the password the hire may already use is left alone.
    let mut reapplied = false;
    if let Some(entry) = ctx.directory.read(a.dn)? {
        // Checked again: another run may have created it since `check`. Ours only when it
        // carries this hire's id and this journal started it; then it is brought to what the
        // playbook declares.
        not_ours(&a, owner(&a, &entry, ctx), ctx.hire_id)?;
        changes.extend(update_attributes(ctx, &a, &entry)?);
        reapplied = intent.contains_key(KEEPS_PASSWORD)
            || ctx.prior.is_some_and(|p| p.status == Status::Done);
    } else {
        let mut attrs = vec![("objectClass".to_owned(), a.object_classes.to_vec())];
        for at in a.attributes.iter().filter(|at| !at.values.is_empty()) {
            attrs.push((at.name.clone(), at.values.clone()));
        }
        if let (Some(p), Some(n)) = (a.posix, intent.get("uid_number")) {
            attrs.push(("uidNumber".into(), vec![n.clone()]));
            attrs.push(("gidNumber".into(), vec![p.gid_number.to_string()]));
        }
        match ctx.directory.add(&Entry {
            dn: a.dn.to_owned(),
            attrs,
        }) {
            Ok(()) => {}
            // Another run added it between our read and our add: never ours.
            Err(crate::backend::BackendError::AlreadyExists(_)) => {
                let Some(entry) = ctx.directory.read(a.dn)? else {
                    return Err(StepError::new(format!(
                        "the directory refused {} as already existing, but no entry has that \
                         DN: another entry has the same sAMAccountName or userPrincipalName",
                        a.dn
                    ))
                    .hint("pick a different login in the playbook's vars")
                    .nothing_done());
                };
                let who = match entry.get(a.owner).first() {
                    Some(id) if id != ctx.hire_id => Owner::Hire(id.clone()),
                    Some(_) => Owner::OtherRun,
                    None => Owner::NotOnboard,
                };
                not_ours(&a, who, ctx.hire_id)?;
            }
            Err(e) => return Err(e.into()),
        }
        // A retried add whose first reply was lost reports success when the entry exists:
        // make sure it is this hire's before anything is set on it.
        let entry = ctx.directory.read(a.dn)?;
        if let Some(id) = entry.as_ref().and_then(|e| e.get(a.owner).first().cloned())
            && id != ctx.hire_id
        {
            not_ours(&a, Owner::Hire(id), ctx.hire_id)?;
        }
        changes.push(format!("created entry {}", a.dn));
    }
    // The number is now visible to every other run: the next allocation may proceed.
    ctx.held = None;
    if let Some(p) = a.posix {
        changes.extend(settle_uid_number(ctx, &a, p.uid_min, p.uid_max)?);
    }

    let mut evidence = BTreeMap::new();
    if reapplied {
        changes.push("the password was left as it is (the hire may already use it)".into());
        return read_back(&a, ctx, changes, evidence);
    }
    let password = generate_password(a.password.length as usize)
        .map_err(|e| StepError::new(format!("cannot generate a password: {e}")))?;
    ctx.directory.set_password(a.dn, &password)?;
    if let Some(enabled) = ctx.directory.enable_account(a.dn)? {
        changes.push(enabled);
    }
    if !ctx.directory.check_password(a.dn, &password)? {
        return Err(StepError::new(format!(
            "the password set on {} does not verify",
            a.dn
        )));
    }
    // What the manager is told is what the directory enforces, not what was asked.
    let mut must_change = false;
    if a.password.must_change {
        if ctx.directory.require_password_change(a.dn)? {
            must_change = true;
            changes.push("password must be changed at first login".into());
        } else {
            changes.push(format!(
                "(the {} cannot force a password change at first login)",
                ctx.directory.describe()
            ));
        }
    }
    // A run that lost the hire meanwhile (another run may be setting a password of its own)
    // must not mail this one: it would arrive last and not work.
    if let Some(held) = &ctx.still_held {
        held().map_err(|e| {
            StepError::new(format!(
                "{e}; the password set on {} is not delivered (the next run sets and delivers a new one)",
                a.dn
            ))
        })?;
    }
    let delivered = deliver::deliver(ctx, &a, &password, must_change, &mut evidence)?;
    changes.push(format!("set the initial password, {delivered}"));
    read_back(&a, ctx, changes, evidence)
}

/// The entry as written, read back: the step's outputs, or what differs.
fn read_back(
    a: &Account<'_>,
    ctx: &mut Ctx<'_>,
    changes: Vec<String>,
    evidence: BTreeMap<String, String>,
) -> StepResult<Applied> {
    let entry = ctx
        .directory
        .read(a.dn)?
        .ok_or_else(|| StepError::new(format!("{} is missing right after it was created", a.dn)))?;
    let drift = a.drift(&entry);
    if !drift.is_empty() {
        return Err(StepError::new(format!(
            "{} does not read back as written: {}",
            a.dn,
            drift.join("; ")
        )));
    }
    Ok(Applied {
        changes,
        outputs: a.outputs(&entry),
        evidence,
    })
}

/// Replaces the declared attributes whose values differ from the entry's.
fn update_attributes(ctx: &mut Ctx<'_>, a: &Account<'_>, entry: &Entry) -> StepResult<Vec<String>> {
    let mut changes = Vec::new();
    for at in a.attributes {
        let have = entry.get(&at.name);
        if !at.values.is_empty() && have != at.values.as_slice() {
            ctx.directory.replace(a.dn, &at.name, &at.values)?;
            changes.push(format!("updated {}", at.name));
        }
    }
    Ok(changes)
}

/// `--reconcile`: make a done account's attributes what the playbook declares again, without
/// touching its password.
fn reconcile(p: &AccountParams, ctx: &mut Ctx<'_>) -> StepResult<Vec<String>> {
    let a = account(p);
    let entry = ctx
        .directory
        .read(a.dn)?
        .ok_or_else(|| StepError::new(format!("{} does not exist", a.dn)))?;
    not_ours(&a, owner(&a, &entry, ctx), ctx.hire_id)?;
    let changes = update_attributes(ctx, &a, &entry)?;
    let entry = ctx
        .directory
        .read(a.dn)?
        .ok_or_else(|| StepError::new(format!("{} vanished", a.dn)))?;
    let drift = a.drift(&entry);
    if !drift.is_empty() {
        return Err(StepError::new(format!(
            "still differs after reconciling: {}",
            drift.join("; ")
        )));
    }
    Ok(changes)
}

/// Makes sure no other entry got the same uidNumber (two runs allocating at once); moves ours
/// to a free one if so.
fn settle_uid_number(
    ctx: &mut Ctx<'_>,
    a: &Account<'_>,
    min: u32,
    max: u32,
) -> StepResult<Vec<String>> {
    let mut changes = Vec::new();
    let mut skip = Vec::new();
    for _ in 0..16 {
        let entry = ctx
            .directory
            .read(a.dn)?
            .ok_or_else(|| StepError::new(format!("{} vanished", a.dn)))?;
        let Some(n) = entry.get("uidNumber").first().cloned() else {
            return Ok(changes);
        };
        let holders = ctx.directory.find(&a.suffix(), "uidNumber", &n)?;
        if holders.len() <= 1 {
            changes.push(format!("uidNumber {n}"));
            return Ok(changes);
        }
        // Another machine took the same number at the same moment (runs on this machine are
        // serialised by the allocation lock): move ours to another free one.
        skip.push(n.parse().unwrap_or(0));
        let next = free_uid_number(ctx, a, min, max, &skip)?;
        ctx.directory
            .replace(a.dn, "uidNumber", &[next.to_string()])?;
    }
    Err(StepError::new(
        "could not find a uidNumber no other run was taking",
    ))
}
