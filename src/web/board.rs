//! The board (every hire by start time: ready, on track, at risk, late; what blocks them and
//! who must act) and a hire's page (steps, evidence, timeline, what waits on whom).
//!
//! The board is read from the store at most every [`FRESH`] and kept, with its table rendered
//! once per filter, so a thousand hires under many viewers cost one pass over the journals,
//! not one per request; a change made through these pages clears it at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::Web;
use super::guard::{Role, User};
use super::page::{path_segment, redirect, to_sign_in};
use crate::engine::read_state;
use crate::journal::Status;
use crate::readiness::{self, Readiness};
use crate::report::{self, JournalFile, View};

/// How long a board read from the store is shown before it is read again.
const FRESH: Duration = Duration::from_secs(2);

/// One hire on the board.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub hire: String,
    pub href: String,
    pub playbook: String,
    /// RFC 3339, for sorting; empty when unknown.
    pub start_at: String,
    /// In the hire's time zone.
    pub starts: String,
    /// ISO week of the start, `2026-W50`.
    pub week: String,
    pub state: Readiness,
    pub label: &'static str,
    pub blockers: Vec<String>,
    /// The roles that must act: `technician`, `hire`, `IT` (a failed step), …
    pub waiting_on: Vec<String>,
    /// A journal that does not verify: shown, flagged.
    pub broken: Option<String>,
}

/// The board as last read, and its table rendered for each filter asked since.
#[derive(Default)]
pub struct Cache(Mutex<Option<Snapshot>>, AtomicBool);

struct Snapshot {
    at: Instant,
    rows: Arc<Vec<Row>>,
    /// By (state, week) filter.
    tables: HashMap<(String, String), Arc<String>>,
}

impl Cache {
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The table for a filter of these rows, if rendered.
    fn table(&self, rows: &Arc<Vec<Row>>, key: &(String, String)) -> Option<Arc<String>> {
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|s| Arc::ptr_eq(&s.rows, rows))
            .and_then(|s| s.tables.get(key).cloned())
    }

    /// Keeps a rendered table, if the board was not read again meanwhile.
    fn keep(&self, rows: &Arc<Vec<Row>>, key: (String, String), table: Arc<String>) {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cached.as_mut().filter(|s| Arc::ptr_eq(&s.rows, rows)) {
            s.tables.insert(key, table);
        }
    }
}

impl Web {
    /// The board, from the cache when it is fresh.
    fn rows(&self) -> Result<Arc<Vec<Row>>, String> {
        // One request reads the store again when the board is stale; the others are shown the
        // board as it was meanwhile, so a thousand journals read never hold a viewer up.
        // Cleared (after a change made here) it is read before it is shown.
        let refreshing = &self.board.1;
        let refresher = {
            let cached = self.board.0.lock().unwrap_or_else(|e| e.into_inner());
            match cached.as_ref() {
                Some(s) if s.at.elapsed() < FRESH => return Ok(s.rows.clone()),
                Some(s) if refreshing.swap(true, Ordering::AcqRel) => return Ok(s.rows.clone()),
                Some(_) => true,
                None => false,
            }
        };
        let read = self.read_rows();
        if refresher {
            refreshing.store(false, Ordering::Release);
        }
        let rows = Arc::new(read?);
        let mut cached = self.board.0.lock().unwrap_or_else(|e| e.into_inner());
        *cached = Some(Snapshot {
            at: Instant::now(),
            rows: rows.clone(),
            tables: HashMap::new(),
        });
        Ok(rows)
    }

    fn read_rows(&self) -> Result<Vec<Row>, String> {
        let now = self.clock.now();
        let store = self.store.as_ref();
        let mut rows = Vec::new();
        for hire in store.hires().map_err(|e| e.to_string())? {
            let href = format!("/hire/{}", path_segment(&hire));
            match read_state(store, &hire) {
                Ok((mut s, _)) => {
                    if store.is_locked(&hire) {
                        s.mark_live();
                    }
                    let a = readiness::assess(&s, now);
                    let zone = s.start.split_whitespace().nth(2).unwrap_or("UTC");
                    let start = s.start_at.parse::<jiff::Timestamp>().ok();
                    let mut waiting_on: Vec<String> = Vec::new();
                    for step in s.steps.values() {
                        let who = match step.status {
                            // Waiting without a request: on another step, named there.
                            Status::Waiting => match &step.request {
                                Some(r) => r.role.clone(),
                                None => continue,
                            },
                            Status::Failed | Status::Uncertain => "IT".to_owned(),
                            _ => continue,
                        };
                        if !waiting_on.contains(&who) {
                            waiting_on.push(who);
                        }
                    }
                    rows.push(Row {
                        hire,
                        href,
                        playbook: s.playbook.clone(),
                        start_at: s.start_at.clone(),
                        starts: start.map_or("no start date".into(), |t| readiness::local(t, zone)),
                        week: start
                            .and_then(|t| t.in_tz(zone).ok())
                            .map_or(String::new(), |z| {
                                let d = z.date().iso_week_date();
                                format!("{}-W{:02}", d.year(), d.week())
                            }),
                        state: a.readiness,
                        label: a.readiness.label(),
                        blockers: a.blockers.into_iter().map(|b| b.summary).collect(),
                        waiting_on,
                        broken: None,
                    });
                }
                Err(e) => rows.push(Row {
                    hire,
                    href,
                    playbook: String::new(),
                    start_at: String::new(),
                    starts: String::new(),
                    week: String::new(),
                    state: Readiness::Late,
                    label: "JOURNAL BROKEN",
                    blockers: vec![e.to_string()],
                    waiting_on: vec!["IT".into()],
                    broken: Some(e.to_string()),
                }),
            }
        }
        rows.sort_by(|a, b| {
            (a.start_at.is_empty(), &a.start_at, &a.hire).cmp(&(
                b.start_at.is_empty(),
                &b.start_at,
                &b.hire,
            ))
        });
        Ok(rows)
    }
}

/// A page only signed-in people see: the viewer, or the answer that sends them to sign in.
pub(super) fn signed_in(web: &Web, headers: &HeaderMap, path: &str) -> Result<User, Response> {
    web.viewer(headers).ok_or_else(|| to_sign_in(path))
}

pub async fn home(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    match web.viewer(&headers) {
        Some(_) => redirect("/board"),
        None => to_sign_in("/board"),
    }
}

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    week: String,
}

#[derive(Serialize)]
struct Table<'a> {
    rows: Vec<&'a Row>,
    filtered: bool,
}

#[derive(Serialize)]
struct StateCount {
    key: &'static str,
    label: &'static str,
    count: usize,
}

#[derive(Serialize)]
struct Board<'a> {
    table: &'a str,
    total: usize,
    weeks: Vec<&'a str>,
    state: &'a str,
    week: &'a str,
    states: Vec<StateCount>,
    may_preview: bool,
    may_report: bool,
}

pub async fn board(
    State(web): State<Arc<Web>>,
    OriginalUri(uri): OriginalUri,
    Query(filter): Query<Filter>,
    headers: HeaderMap,
) -> Response {
    let user = match signed_in(&web, &headers, &uri.to_string()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let rows = {
        let reader = web.clone();
        match tokio::task::spawn_blocking(move || reader.rows()).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => return web.broken(&format!("cannot read the store: {e}")),
            Err(e) => return web.broken(&e.to_string()),
        }
    };
    let state_key = |r: &Row| match r.state {
        Readiness::Ready => "ready",
        Readiness::OnTrack => "on_track",
        Readiness::AtRisk => "at_risk",
        Readiness::Late => "late",
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut weeks: Vec<&str> = Vec::new();
    for r in rows.iter() {
        *counts.entry(state_key(r)).or_default() += 1;
        if !r.week.is_empty() && !weeks.contains(&r.week.as_str()) {
            weeks.push(&r.week);
        }
    }
    weeks.sort_unstable();
    let key = (filter.state.clone(), filter.week.clone());
    let table = match web.board.table(&rows, &key) {
        Some(t) => t,
        None => {
            let shown: Vec<&Row> = rows
                .iter()
                .filter(|r| filter.state.is_empty() || state_key(r) == filter.state)
                .filter(|r| filter.week.is_empty() || r.week == filter.week)
                .collect();
            let table = match web.fragment(
                "board-table.html",
                &Table {
                    rows: shown,
                    filtered: !key.0.is_empty() || !key.1.is_empty(),
                },
            ) {
                Ok(t) => Arc::new(t),
                Err(e) => return web.broken(&e),
            };
            web.board.keep(&rows, key, table.clone());
            table
        }
    };
    web.render(
        StatusCode::OK,
        "board.html",
        "Board",
        Some(&user),
        Board {
            total: rows.len(),
            table: &table,
            weeks,
            state: &filter.state,
            week: &filter.week,
            states: [
                ("ready", "Ready"),
                ("on_track", "On track"),
                ("at_risk", "At risk"),
                ("late", "Late"),
            ]
            .into_iter()
            .map(|(key, label)| StateCount {
                key,
                label,
                count: counts.get(key).copied().unwrap_or(0),
            })
            .collect(),
            may_preview: user.may(Role::Hr),
            may_report: user.may(Role::Audit) || user.may(Role::It),
        },
    )
}

#[derive(Serialize)]
struct HirePage {
    hire: report::HireReport,
    readiness: &'static str,
    blockers: Vec<String>,
    /// Steps waiting on a person: who, what, and (for IT) where to sign.
    waiting: Vec<Waiting>,
}

#[derive(Serialize)]
struct Waiting {
    step: String,
    on: String,
    detail: String,
    since: String,
    href: Option<String>,
}

pub async fn hire(
    State(web): State<Arc<Web>>,
    Path(hire): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let user = match signed_in(&web, &headers, &uri.to_string()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let page = {
        let (web, user) = (web.clone(), user.clone());
        tokio::task::spawn_blocking(move || web.hire_page(&hire, &user)).await
    };
    match page {
        Ok(Some(page)) => {
            let title = format!("Hire {}", page.hire.hire);
            web.render(StatusCode::OK, "hire.html", &title, Some(&user), page)
        }
        Ok(None) => web.message(
            StatusCode::NOT_FOUND,
            "No such hire",
            "There is no journal for this hire in the store.",
            "Go back to the board.",
            Some(&user),
        ),
        Err(e) => web.broken(&e.to_string()),
    }
}

impl Web {
    fn hire_page(&self, hire: &str, user: &User) -> Option<HirePage> {
        let store = self.store.as_ref();
        if !store.has(hire) {
            return None;
        }
        let view = if user.may(Role::It) || user.may(Role::Audit) {
            View::Full
        } else {
            View::Hr
        };
        let file = JournalFile::read(store, hire);
        let mut report = report::build(std::slice::from_ref(&file), view, self.clock.now());
        let hire_report = report.hires.pop()?;
        let (readiness, blockers, waiting) = match read_state(store, hire) {
            Ok((s, _)) => {
                let a = readiness::assess(&s, self.clock.now());
                let waiting = s
                    .steps
                    .iter()
                    .filter(|(_, st)| st.status == Status::Waiting && st.request.is_some())
                    .map(|(id, st)| Waiting {
                        step: id.clone(),
                        on: st
                            .request
                            .as_ref()
                            .map_or(String::new(), |r| r.role.clone()),
                        detail: st.detail.clone(),
                        since: st.waiting_since.clone().unwrap_or_default(),
                        href: (user.may(Role::It) && st.request.is_some())
                            .then(|| format!("/sign/{}/{}", path_segment(hire), path_segment(id))),
                    })
                    .collect();
                (
                    a.readiness.label(),
                    a.blockers.into_iter().map(|b| b.summary).collect(),
                    waiting,
                )
            }
            Err(e) => ("JOURNAL BROKEN", vec![e.to_string()], Vec::new()),
        };
        Some(HirePage {
            hire: hire_report,
            readiness,
            blockers,
            waiting,
        })
    }
}
