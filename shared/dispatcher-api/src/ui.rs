//! The read-only pages for people, under `/ui`: this generation, job search and
//! explanation, the history of generations and a page per generation, the overrides.
//! Server-rendered HTML (maud: every value is escaped; job names come from public files),
//! no JavaScript needed (one small script adds a filter box), readable on a phone. They read the lookup's in-memory generation and its plan (loaded once per
//! generation), so they never slow `POST /`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dispatcher_app::control::utc;
use dispatcher_app::model::GenerationRecord;
use dispatcher_app::pages::{JobView, Overview, PageError, Pages};
use dispatcher_app::records::BackupPr;
use dispatcher_core::overrides::OverrideSpec;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Jobs a search lists at most.
pub const SEARCH_LIMIT: usize = 50;
/// Generations the history shows.
pub const HISTORY: u64 = 20;

/// What the pages need.
pub struct UiState {
    /// Their reads.
    pub pages: Pages,
    /// The clock (seconds since the epoch): an override ends at its time.
    pub now: fn() -> i64,
}

/// The pages' routes.
pub fn ui_router(state: Arc<UiState>) -> Router {
    Router::new()
        .route("/ui", get(overview))
        .route("/ui/", get(overview))
        .route("/ui/jobs", get(search))
        .route("/ui/jobs/{name}", get(job))
        .route("/ui/history", get(history))
        .route("/ui/generations/{n}", get(generation))
        .route("/ui/overrides", get(overrides))
        .route("/ui/style.css", get(style))
        .route("/ui/filter.js", get(script))
        .with_state(state)
}

const STYLE: &str = include_str!("ui.css");
const SCRIPT: &str = include_str!("ui.js");

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// An embedded asset: it changes only with the binary, so browsers may keep it an hour.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A page: its status and the HTML, with headers that keep it inert.
fn page(status: StatusCode, title: &str, query: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Prow job dispatcher" }
                link rel="stylesheet" href="/ui/style.css";
                script src="/ui/filter.js" defer {}
            }
            body {
                header {
                    nav aria-label="Pages" {
                        a href="/ui" { "This generation" }
                        a href="/ui/jobs" { "Jobs" }
                        a href="/ui/history" { "History" }
                        a href="/ui/overrides" { "Overrides" }
                    }
                    form action="/ui/jobs" method="get" role="search" {
                        label for="q" { "Job name contains" }
                        input id="q" name="q" type="search" value=(query) autocomplete="off";
                        button type="submit" { "Search" }
                    }
                }
                main { (body) }
            }
        }
    };
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn failed(e: &PageError) -> Response {
    tracing::error!(error = %dispatcher_core::chain(e), "a page failed");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "",
        html! { h1 { "The dispatcher's store is unavailable" } p { "Try again in a minute." } },
    )
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

async fn overview(State(s): State<Arc<UiState>>) -> Response {
    match s.pages.overview().await {
        Ok(Some(o)) => page(StatusCode::OK, "This generation", "", overview_body(&o)),
        Ok(None) => page(
            StatusCode::OK,
            "This generation",
            "",
            html! { h1 { "No generation is serving yet" } },
        ),
        Err(e) => failed(&e),
    }
}

fn overview_body(o: &Overview) -> Markup {
    let p = &o.record;
    let plan = &o.plan;
    html! {
        h1 { "Generation " (p.generation) }
        p { "Published " time datetime=(utc(p.published_at)) { (utc(p.published_at)) } ", cause " strong { (p.cause.as_str()) } "." }
        p {
            "Backup PR: "
            @match &o.backup_pr {
                BackupPr::NeverMade => { "none made yet." }
                BackupPr::UpToDate => { "the job files' static cluster fields match." }
                BackupPr::Pending(g) => { "pending since generation " (g) ": the static cluster fields do not match yet." }
            }
        }
        (applied(&p.applied.overrides))
        section aria-labelledby="shares" {
            h2 id="shares" { "Share of demand per cluster" }
            figure {
                (PreEscaped(dispatcher_core::report::svg(plan)))
                figcaption { "Target (outline) and achieved (bar) share of the placed demand." }
            }
            div.scroll { table {
                caption { "Clusters" }
                thead { tr { th scope="col" { "cluster" } th scope="col" { "state" } th scope="col" { "jobs" } th scope="col" { "demand" } th scope="col" { "target" } th scope="col" { "achieved" } } }
                tbody { @for (name, c) in &plan.clusters {
                    tr { th scope="row" { (name) } td { (c.state.as_str()) } td.n { (c.jobs) } td.n { (format!("{:.1}", c.demand)) } td.n { (c.target_share.map_or("-".to_owned(), pct)) } td.n { (pct(c.share)) } }
                } }
            } }
        }
        (moved(&o.record))
        section aria-labelledby="unschedulable" {
            h2 id="unschedulable" { "Jobs no cluster can run" }
            @if plan.unschedulable.is_empty() { p { "None." } } @else {
                ul data-filter="jobs" { @for u in plan.unschedulable.iter().take(200) {
                    li { a href=(job_href(&u.job)) { (u.job) } ": " (u.reason) }
                } }
            }
        }
    }
}

/// The overrides a generation applied, if any.
fn applied(overrides: &[OverrideSpec]) -> Markup {
    html! {
        @if !overrides.is_empty() {
            section aria-labelledby="applied" {
                h2 id="applied" { "Overrides applied" }
                ul { @for ov in overrides { li { (override_item(ov)) } } }
            }
        }
    }
}

/// One override, in a line.
fn override_item(ov: &OverrideSpec) -> Markup {
    html! {
        (ov.kind.as_str()) " of " strong { (ov.cluster) }
        @if let Some(c) = &ov.capability { " (" (c) ")" }
        @if let Some(n) = ov.capacity { " to " (n) }
        " until " (utc(ov.expires_at))
    }
}

/// What a generation moved, per cluster pair.
fn moved(r: &GenerationRecord) -> Markup {
    html! {
        section aria-labelledby="moved" {
            h2 id="moved" { "What this generation moved" }
            @if r.changed == 0 { p { "Nothing moved." } }
            @else if r.moved.is_empty() { p { (r.changed) " jobs changed; this generation's record predates the per-pair figures." } }
            @else {
                div.scroll { table {
                    caption { "Jobs and demand per cluster pair" }
                    thead { tr { th scope="col" { "from" } th scope="col" { "to" } th scope="col" { "jobs" } th scope="col" { "demand" } } }
                    tbody { @for m in &r.moved {
                        tr { td { (m.from.as_deref().unwrap_or("(new)")) } td { (m.to.as_deref().unwrap_or("(none)")) } td.n { (m.jobs) } td.n { (format!("{:.1}", m.demand)) } }
                    } }
                } }
            }
        }
    }
}

fn generation_href(n: u64) -> String {
    format!("/ui/generations/{n}")
}

fn job_href(name: &str) -> String {
    format!(
        "/ui/jobs/{}",
        url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    )
}

#[derive(serde::Deserialize, Default)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(State(s): State<Arc<UiState>>, Query(query): Query<SearchQuery>) -> Response {
    // No job's name is longer than a lookup accepts: a longer text cannot match.
    let q: String = query
        .q
        .char_indices()
        .take_while(|(i, c)| i + c.len_utf8() <= dispatcher_app::lookup::MAX_JOB_NAME)
        .map(|(_, c)| c)
        .collect();
    if q.trim().is_empty() {
        return page(
            StatusCode::OK,
            "Jobs",
            "",
            html! { h1 { "Jobs" } p { "Type part of a job's name above." } },
        );
    }
    match s.pages.search(&q, SEARCH_LIMIT + 1).await {
        Ok(found) => {
            let more = found.len() > SEARCH_LIMIT;
            let body = html! {
                h1 { "Jobs matching “" (q) "”" }
                @if found.is_empty() { p { "No job of this generation matches." } } @else {
                    div.scroll { table data-filter="jobs" {
                        caption { (found.len().min(SEARCH_LIMIT)) @if more { "+" } " jobs" }
                        thead { tr { th scope="col" { "job" } th scope="col" { "cluster" } } }
                        tbody { @for (job, cluster) in found.iter().take(SEARCH_LIMIT) {
                            tr { td { a href=(job_href(job)) { (job) } } td { (cluster) } }
                        } }
                    } }
                    @if more { p { "More jobs match: type more of the name." } }
                }
            };
            page(StatusCode::OK, "Jobs", &q, body)
        }
        Err(e) => failed(&e),
    }
}

async fn job(State(s): State<Arc<UiState>>, Path(name): Path<String>) -> Response {
    if name.len() > dispatcher_app::lookup::MAX_JOB_NAME {
        return page(
            StatusCode::BAD_REQUEST,
            "Jobs",
            "",
            html! { h1 { "No job has a name that long" } },
        );
    }
    match s.pages.job(&name, (s.now)()).await {
        Ok(Some(v)) => page(StatusCode::OK, &v.name, "", job_body(&v)),
        Ok(None) => page(
            StatusCode::NOT_FOUND,
            "Unknown job",
            &name,
            html! { h1 { "This generation has no job " code { (name) } } },
        ),
        Err(e) => failed(&e),
    }
}

fn job_body(v: &JobView) -> Markup {
    let e = &v.entry;
    html! {
        h1 { code { (v.name) } }
        dl {
            dt { "Cluster" } dd { strong { (v.cluster.as_deref().unwrap_or("none")) } " (generation " (v.generation) ")" }
            dt { "Rule" } dd { (e.rule.as_str()) @if !e.detail.is_empty() { ": " (e.detail) } }
            dt { "File" } dd { code { (e.file) } }
            dt { "Demand" } dd { (format!("{:.2}", e.demand)) }
        }
        @if let Some(o) = &v.overridden {
            section.notice aria-labelledby="override" {
                h2 id="override" { "Moved by an override" }
                p { "Without it this job runs on " strong { (o.baseline.as_deref().unwrap_or("no cluster")) } "; the override ends " (utc(o.until)) "." }
            }
        }
        @if let Some(t) = v.override_ended {
            section.notice aria-labelledby="ended" {
                h2 id="ended" { "Back where it ran before an override" }
                p { "An override moved it until " (utc(t)) "; since then the lookup answers its cluster without it. The rule and candidates below are still the override's, until the next generation." }
            }
        }
        @if !v.affecting.is_empty() {
            section aria-labelledby="in-force" {
                h2 id="in-force" { "Overrides in force on its cluster" }
                ul { @for ov in &v.affecting { li { (override_item(ov)) } } }
            }
        }
        @if let Some(u) = &v.unschedulable {
            section.notice aria-labelledby="why" { h2 id="why" { "No cluster can run it" } p { (u.reason) } }
        }
        @if let Some(f) = &v.file {
            section aria-labelledby="candidates" {
                h2 id="candidates" { "Its file's candidates" }
                p { "The file's cluster is " strong { (f.cluster.as_deref().unwrap_or("none")) } " (" (f.reason.as_str()) ")." }
                @if !f.candidates.is_empty() {
                    div.scroll { table {
                        caption { "Each cluster's score (1.0 is exactly on target; lower takes the file) and why the others were rejected" }
                        thead { tr { th scope="col" { "cluster" } th scope="col" { "score" } th scope="col" { "rejected because" } } }
                        tbody { @for c in &f.candidates {
                            tr { th scope="row" { (c.cluster) } td.n { (c.score.map_or("-".to_owned(), |s| format!("{s:.3}"))) } td { (c.rejected.join(", ")) } }
                        } }
                    } }
                }
            }
        }
        section aria-labelledby="history" {
            h2 id="history" { "Its moves" }
            @if v.history.is_empty() { p { "No move recorded." } } @else {
                div.scroll { table {
                    caption { "Newest first" }
                    thead { tr { th scope="col" { "generation" } th scope="col" { "when" } th scope="col" { "cause" } th scope="col" { "from" } th scope="col" { "to" } } }
                    tbody { @for c in &v.history {
                        tr { td.n { (c.generation) } td { (utc(c.at)) } td { (c.cause.as_str()) } td { (c.from.as_deref().unwrap_or("(new)")) } td { (c.to.as_deref().unwrap_or("(none)")) } }
                    } }
                } }
            }
        }
    }
}

async fn history(State(s): State<Arc<UiState>>) -> Response {
    match s.pages.history(HISTORY).await {
        Ok(records) => page(
            StatusCode::OK,
            "History",
            "",
            html! {
                h1 { "The last generations" }
                @if records.is_empty() { p { "None yet." } } @else {
                    div.scroll { table data-filter="generations" {
                        caption { "Newest first" }
                        thead { tr { th scope="col" { "generation" } th scope="col" { "published" } th scope="col" { "cause" } th scope="col" { "jobs changed" } th scope="col" { "moved demand" } th scope="col" { "jobs placed" } th scope="col" { "overrides" } } }
                        tbody { @for r in &records {
                            tr {
                                th scope="row" { a href=(generation_href(r.generation)) { (r.generation) } }
                                td { (utc(r.published_at)) } td { (r.cause.as_str()) } td.n { (r.changed) }
                                td.n { @if r.moved.is_empty() && r.changed > 0 { "-" } @else { (format!("{:.1}", r.moved_demand())) } }
                                td.n { (r.placed_jobs) }
                                td { @for o in &r.applied.overrides { (o.kind.as_str()) " " (o.cluster) " " } }
                            }
                        } }
                    } }
                }
            },
        ),
        Err(e) => failed(&e),
    }
}

async fn generation(State(s): State<Arc<UiState>>, Path(n): Path<String>) -> Response {
    let record = match n.parse::<u64>() {
        Ok(n) => s.pages.generation(n).await,
        Err(_) => Ok(None),
    };
    match record {
        Ok(Some(v)) => {
            let title = format!("Generation {}", v.record.generation);
            page(
                StatusCode::OK,
                &title,
                "",
                generation_body(&v.record, v.serving),
            )
        }
        Ok(None) => page(
            StatusCode::NOT_FOUND,
            "Unknown generation",
            "",
            html! { h1 { "No generation " code { (n) } " was published" } p { a href="/ui/history" { "The last generations" } } },
        ),
        Err(e) => failed(&e),
    }
}

/// A generation from its record: when and why, its shares, what it moved.
fn generation_body(r: &GenerationRecord, serving: bool) -> Markup {
    let rows: Vec<(&str, f64, Option<f64>)> = r
        .clusters
        .iter()
        .map(|(n, c)| (n.as_str(), c.share, c.target_share))
        .collect();
    html! {
        h1 { "Generation " (r.generation) }
        p {
            "Published " time datetime=(utc(r.published_at)) { (utc(r.published_at)) } ", cause " strong { (r.cause.as_str()) }
            @if let Some(b) = r.base { ", computed against " a href=(generation_href(b)) { "generation " (b) } }
            "."
        }
        @if serving { p { "It is serving now: " a href="/ui" { "this generation's page" } " also lists its unschedulable jobs and the backup PR." } }
        dl {
            dt { "Jobs" } dd { (r.jobs) " (" (r.placed_jobs) " placed, " (r.unschedulable_jobs) " that no cluster can run)" }
            dt { "Changed" } dd { (r.changed) " jobs, " (r.deleted) " of them deleted" }
        }
        (applied(&r.applied.overrides))
        section aria-labelledby="shares" {
            h2 id="shares" { "Share of demand per cluster" }
            figure {
                (PreEscaped(dispatcher_core::report::share_chart(&rows)))
                figcaption { "Target (outline) and achieved (bar) share of the placed demand." }
            }
            div.scroll { table {
                caption { "Clusters" }
                thead { tr { th scope="col" { "cluster" } th scope="col" { "demand" } th scope="col" { "target" } th scope="col" { "achieved" } } }
                tbody { @for (name, c) in &r.clusters {
                    tr { th scope="row" { (name) } td.n { (format!("{:.1}", c.demand)) } td.n { (c.target_share.map_or("-".to_owned(), pct)) } td.n { (pct(c.share)) } }
                } }
            } }
        }
        (moved(r))
    }
}

async fn overrides(State(s): State<Arc<UiState>>) -> Response {
    match s.pages.overrides().await {
        Ok(all) => page(
            StatusCode::OK,
            "Overrides",
            "",
            html! {
                h1 { "Overrides" }
                p { "Temporary drains and capacities (read-only here; operators use the control API, the CLI or Slack)." }
                @if all.is_empty() { p { "None." } } @else {
                    div.scroll { table data-filter="overrides" {
                        caption { "Newest first" }
                        thead { tr { th scope="col" { "id" } th scope="col" { "what" } th scope="col" { "state" } th scope="col" { "ends" } th scope="col" { "approvers" } th scope="col" { "reason" } } }
                        tbody { @for o in &all {
                            tr {
                                th scope="row" { code { (o.id) } }
                                td { (dispatcher_app::control::describe(o)) }
                                td { (o.state.as_str()) }
                                td { (utc(o.expires_at)) }
                                td { (o.approvals.iter().map(|a| a.actor.as_str()).collect::<Vec<_>>().join(", ")) }
                                td { (o.reason) @if let Some(u) = &o.incident_url { " " a href=(u) rel="noreferrer" { "incident" } } }
                            }
                        } }
                    } }
                }
            },
        ),
        Err(e) => failed(&e),
    }
}
