//! The operator's web page and its JSON API (axum), served by `edge-ad serve` with `[web]`.
//!
//! Anyone who can reach the port may look (the systemd drop-in says who can); every action
//! that changes the box needs a login. A user's password is stored as an Argon2id hash
//! (`edge-ad hash-password`) and checked off the runtime's thread; failed logins are limited per
//! address; a session is a random token in an HttpOnly, SameSite=Strict cookie that expires
//! after `session_minutes` without use. Actions go to the service's main loop as [`Command`]s,
//! which records who changed what. Bodies are capped, and every bad request gets a 4xx and
//! changes nothing.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/` | the page |
//! | GET | `/api/state` | lines, fault, last verdicts, counters, model, calibration, changes, who is logged in |
//! | GET | `/live.jpg` | the last frame with its overlay (404 before the first) |
//! | GET | `/api/ng` | the newest NG parts in the archive (names) |
//! | GET | `/archive/{name}` | one archived part's image |
//! | POST | `/api/login` | `{"user", "password"}`: a session cookie |
//! | POST | `/api/logout` | ends the session |
//! | POST | `/api/sensitivity` | `{"sensitivity": S}` (login) |
//! | POST | `/api/acknowledge` | acknowledges a latched fault (login) |
//! | GET | `/teach/{name}` | one teach shot's image (a preview) |
//! | POST | `/api/teach/shot` | takes a teach shot from the source, between parts (login) |
//! | POST | `/api/teach/clear` | forgets the teach shots (login) |
//! | POST | `/api/teach/apply` | a calibration from the shots, in force once loaded and checked (login) |

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use image::RgbImage;
use serde::Deserialize;
use serde_json::json;

use super::{Board, Command, Commander};
use edge_ad_core::decision::Verdict;

/// The page: plain HTML with a little script that polls `/api/state`; no build step.
const PAGE: &str = include_str!("page.html");
/// The largest request body (login and settings are a few dozen bytes).
const MAX_BODY: usize = 4 * 1024;
/// Failed logins from one address within [`FAILURE_WINDOW`] before it must wait.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The session cookie's name.
const COOKIE: &str = "edge_ad_session";
/// NG parts listed at most.
const NG_LISTED: usize = 12;

/// What the live view shows: the last frame with what its overlay needs, copied by the worker
/// and drawn only when the page asks (`/live.jpg`), so the frame path pays a copy, not a drawing.
#[derive(Clone)]
pub struct LiveFrame {
    /// The frame as taken.
    pub frame: RgbImage,
    /// The anomaly map at the working side.
    pub map: Vec<f32>,
    /// The working side.
    pub side: u32,
    /// Where the working square lies in the frame.
    pub geometry: edge_ad_core::preprocess::CropGeometry,
    /// Verdict, score, threshold and the counters' footer line.
    pub caption: (Verdict, f32, f32, String),
}

impl LiveFrame {
    /// The frame with its overlay, as the archive and the display show it.
    fn draw(&self) -> RgbImage {
        let map = edge_ad_core::output::map_at_source(&self.map, self.side, &self.geometry).ok();
        let (verdict, score, threshold, footer) = &self.caption;
        let caption = crate::overlay::Caption { verdict: Some(*verdict), score: *score, threshold: *threshold, footer };
        crate::overlay::draw(&self.frame, map.as_deref(), &caption)
    }
}

/// The last frame for `/live.jpg`, kept by the worker.
#[derive(Clone, Default)]
pub struct LiveView {
    frame: Arc<Mutex<Option<(Instant, LiveFrame)>>>,
}

/// The live view takes at most this many frames a second (each is a copy on the frame path).
const LIVE_EVERY: Duration = Duration::from_millis(200);

impl LiveView {
    /// Whether it wants the next frame.
    pub fn wants(&self) -> bool {
        self.frame.lock().is_ok_and(|f| f.as_ref().is_none_or(|(at, _)| at.elapsed() >= LIVE_EVERY))
    }

    /// Keeps `frame` as the latest.
    pub fn offer(&self, frame: LiveFrame) {
        if let Ok(mut f) = self.frame.lock() {
            *f = Some((Instant::now(), frame));
        }
    }
}

struct Session {
    user: String,
    last_used: Instant,
}

/// Users, sessions and the failed-login limit.
struct Auth {
    users: BTreeMap<String, String>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    idle: Duration,
}

impl Auth {
    /// The user whose live session `headers` carry (and the session is used now).
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let token = session_token(headers)?;
        let mut sessions = self.sessions.lock().ok()?;
        sessions.retain(|_, s| s.last_used.elapsed() < self.idle);
        let s = sessions.get_mut(token)?;
        s.last_used = Instant::now();
        Some(s.user.clone())
    }

    fn blocked(&self, ip: IpAddr) -> bool {
        self.failures.lock().is_ok_and(|mut f| {
            f.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
            f.get(&ip).is_some_and(|(n, _)| *n >= MAX_FAILURES)
        })
    }

    fn failed(&self, ip: IpAddr) {
        if let Ok(mut f) = self.failures.lock() {
            if f.len() > 10_000 {
                f.clear(); // a flood of addresses: start over rather than grow
            }
            f.entry(ip).or_insert((0, Instant::now())).0 += 1;
        }
    }

    fn open_session(&self, user: &str) -> Option<String> {
        let mut bytes = [0u8; 32];
        getrandom_fill(&mut bytes)?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.sessions.lock().ok()?;
        sessions.insert(token.clone(), Session { user: user.to_string(), last_used: Instant::now() });
        Some(token)
    }
}

/// The session token the request's cookies carry, if any.
fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')))
}

/// Fills `bytes` from the operating system's random source.
fn getrandom_fill(bytes: &mut [u8]) -> Option<()> {
    use password_hash::rand_core::{OsRng, RngCore};
    OsRng.try_fill_bytes(bytes).ok()
}

/// Whether `password` matches the PHC-format Argon2 `hash`.
pub fn verify(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::PasswordHash::new(hash)
        .is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// An Argon2id hash of `password` with a fresh salt, in PHC format (for `[web] users`).
pub fn hash(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    let salt = password_hash::SaltString::generate(&mut password_hash::rand_core::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `hash` is an Argon2id hash in PHC format (what box.toml's `web.users` must hold).
pub fn is_argon2id(hash: &str) -> bool {
    argon2::PasswordHash::new(hash).is_ok_and(|h| h.algorithm == argon2::Algorithm::Argon2id.ident())
}

#[derive(Clone)]
pub(super) struct Web {
    board: Arc<Mutex<Board>>,
    live: LiveView,
    auth: Arc<Auth>,
    command: Commander,
    archive: Option<PathBuf>,
    teach: PathBuf,
}

impl Web {
    pub(super) fn new(
        config: &crate::config::WebConfig,
        board: Arc<Mutex<Board>>,
        live: LiveView,
        command: Commander,
        archive: Option<PathBuf>,
        teach: PathBuf,
    ) -> Self {
        let auth = Auth {
            users: config.users.clone(),
            sessions: Mutex::default(),
            failures: Mutex::default(),
            idle: Duration::from_secs(config.session_minutes.saturating_mul(60)),
        };
        Self { board, live, auth: Arc::new(auth), command, archive, teach }
    }
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, Json(json!({ "error": why }))).into_response()
}

/// The routes.
pub(super) fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/state", get(state))
        .route("/live.jpg", get(live))
        .route("/api/ng", get(ng_parts))
        .route("/archive/{name}", get(archived))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/sensitivity", post(sensitivity))
        .route("/api/acknowledge", post(acknowledge))
        .route("/teach/{name}", get(teach_shot))
        .route("/api/teach/shot", post(|w: State<Web>, h: HeaderMap| teach(w, h, Teach::Shot)))
        .route("/api/teach/clear", post(|w: State<Web>, h: HeaderMap| teach(w, h, Teach::Clear)))
        .route("/api/teach/apply", post(|w: State<Web>, h: HeaderMap| teach(w, h, Teach::Apply)))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(web)
}

/// Serves the page on `listener` until the runtime stops.
pub(super) async fn serve(listener: tokio::net::TcpListener, web: Web) {
    let app = router(web).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("web: the server stopped: {e}");
    }
}

async fn state(State(web): State<Web>, headers: HeaderMap) -> Response {
    let user = web.auth.user(&headers);
    let Ok(b) = web.board.lock().map(|b| b.clone()) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "the board is unavailable");
    };
    let l = b.lines;
    let finite = |v: f32| v.is_finite().then_some(v);
    Json(json!({
        "lines": {"ready": l.ready, "busy": l.busy, "result_valid": l.result_valid, "ok": l.ok, "ng": l.ng,
                  "error": l.error, "missed": l.missed},
        "fault": b.fault.map(|f| format!("{f:?}").to_lowercase()),
        "fault_reason": b.fault_reason,
        "results": b.results,
        "threshold": finite(b.threshold),
        "sensitivity": b.sensitivity,
        "recent": b.recent,
        "counters": b.counters,
        "model": b.model,
        "calibration": b.calibration,
        "changes": b.changes,
        "teach": b.teach,
        "user": user,
        "login": !web.auth.users.is_empty(),
    }))
    .into_response()
}

async fn live(State(web): State<Web>) -> Response {
    let Some(frame) = web.live.frame.lock().ok().and_then(|f| f.as_ref().map(|(_, frame)| frame.clone())) else {
        return refuse(StatusCode::NOT_FOUND, "no frame yet");
    };
    // Drawing and encoding are CPU work: off the runtime's thread, so Modbus and MQTT go on.
    let encoded = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(&frame.draw()).map(|()| out)
    })
    .await;
    match encoded {
        Ok(Ok(jpeg)) => {
            ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], jpeg).into_response()
        }
        _ => refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the frame"),
    }
}

async fn ng_parts(State(web): State<Web>) -> Response {
    let names = web.archive.as_deref().map(|dir| crate::archive::newest_ng(dir, NG_LISTED)).unwrap_or_default();
    Json(json!({ "archive": web.archive.is_some(), "ng": names })).into_response()
}

/// One PNG in `dir`, by a name exactly as the page lists it: no path of any kind, and only a
/// regular file (not a link) directly in the folder.
fn png_in(dir: Option<&std::path::Path>, name: &str, what: &str) -> Response {
    let plain = !name.starts_with('.')
        && name.ends_with(".png")
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let missing = || refuse(StatusCode::NOT_FOUND, &format!("no such {what}"));
    let Some(dir) = dir.filter(|_| plain) else { return missing() };
    let path = dir.join(name);
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return missing();
    }
    match edge_ad_core::files::read_capped(&path, edge_ad_core::files::caps::IMAGE) {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], bytes).into_response()
        }
        Err(_) => missing(),
    }
}

async fn archived(State(web): State<Web>, Path(name): Path<String>) -> Response {
    png_in(web.archive.as_deref(), &name, "archived part")
}

async fn teach_shot(State(web): State<Web>, Path(name): Path<String>) -> Response {
    png_in(Some(&web.teach), &name, "teach shot")
}

/// A teach action from the page.
#[derive(Clone, Copy)]
enum Teach {
    Shot,
    Clear,
    Apply,
}

async fn teach(State(web): State<Web>, headers: HeaderMap, action: Teach) -> Response {
    let Some(by) = web.auth.user(&headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "log in to change the box");
    };
    if web.board.lock().is_ok_and(|b| b.teach.busy) {
        return refuse(StatusCode::CONFLICT, "a calibration is being made; wait for it to end");
    }
    let command = match action {
        Teach::Shot => Command::TeachShot { by },
        Teach::Clear => Command::TeachClear { by },
        Teach::Apply => Command::TeachApply { by },
    };
    if !(web.command)(command) {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
    }
    (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    user: String,
    password: String,
}

/// A hash to check unknown users against, so that a wrong user name takes as long as a wrong
/// password (made once, at first use).
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy").unwrap_or_default())
}

async fn login(
    State(web): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(form): Json<Login>,
) -> Response {
    if web.auth.users.is_empty() {
        return refuse(StatusCode::FORBIDDEN, "no users are configured (box.toml, web.users)");
    }
    if web.auth.blocked(peer.ip()) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "too many failed logins from this address; wait a minute");
    }
    if form.user.len() > 64 || form.password.len() > 1024 {
        return refuse(StatusCode::BAD_REQUEST, "user or password too long");
    }
    let known = web.auth.users.get(&form.user).cloned();
    let checked = known.clone().unwrap_or_else(|| decoy().to_string());
    let password = form.password;
    let matches = tokio::task::spawn_blocking(move || verify(&checked, &password)).await.unwrap_or(false);
    if !(matches && known.is_some()) {
        web.auth.failed(peer.ip());
        tracing::warn!("web: failed login as {:?} from {}", form.user, peer.ip());
        return refuse(StatusCode::UNAUTHORIZED, "wrong user or password");
    }
    let Some(token) = web.auth.open_session(&form.user) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot open a session");
    };
    tracing::info!("web: {} logged in from {}", form.user, peer.ip());
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", web.auth.idle.as_secs());
    ([(header::SET_COOKIE, cookie)], Json(json!({ "user": form.user }))).into_response()
}

async fn logout(State(web): State<Web>, headers: HeaderMap) -> Response {
    // An unknown or expired token removes nothing.
    if let (Some(token), Ok(mut sessions)) = (session_token(&headers), web.auth.sessions.lock()) {
        sessions.remove(token);
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Json(json!({ "user": null }))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sensitivity {
    sensitivity: f32,
}

async fn sensitivity(State(web): State<Web>, headers: HeaderMap, Json(form): Json<Sensitivity>) -> Response {
    let Some(user) = web.auth.user(&headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "log in to change the box");
    };
    let range = edge_ad_core::decision::SENSITIVITY_RANGE;
    if !range.contains(&form.sensitivity) {
        let why = format!("sensitivity must be in {}..={}, got {}", range.start(), range.end(), form.sensitivity);
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, &why);
    }
    if !(web.command)(Command::Sensitivity { value: form.sensitivity, by: user }) {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
    }
    (StatusCode::ACCEPTED, Json(json!({ "sensitivity": form.sensitivity }))).into_response()
}

async fn acknowledge(State(web): State<Web>, headers: HeaderMap) -> Response {
    let Some(user) = web.auth.user(&headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "log in to change the box");
    };
    if !(web.command)(Command::AcknowledgeFault { by: user }) {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
    }
    (StatusCode::ACCEPTED, Json(json!({ "acknowledged": true }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let h = hash("line 3 secret").unwrap();
        assert!(is_argon2id(&h), "{h}");
        assert!(verify(&h, "line 3 secret"));
        assert!(!verify(&h, "line 3 secre"));
        assert!(!verify("not a hash", "x"));
        assert!(!is_argon2id("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$Zm9vYmFyYmF6"), "argon2i is not argon2id");
    }

    #[test]
    fn failed_logins_block_an_address_for_the_window() {
        let auth = Auth {
            users: BTreeMap::new(),
            sessions: Mutex::default(),
            failures: Mutex::default(),
            idle: Duration::from_secs(60),
        };
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(!auth.blocked(a));
            auth.failed(a);
        }
        assert!(auth.blocked(a) && !auth.blocked(b), "only the failing address waits");
        let token = auth.open_session("ann").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("other=1; {COOKIE}={token}").parse().unwrap());
        assert_eq!(auth.user(&headers).as_deref(), Some("ann"));
        headers.insert(header::COOKIE, format!("{COOKIE}=forged").parse().unwrap());
        assert_eq!(auth.user(&headers), None);
    }
}
