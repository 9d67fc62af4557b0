//! Working the leads as a team: one lead with its notes and history, changing its status and
//! owner, adding a note, and the users. Every route is private; managing users also needs an
//! [`Admin`].

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::auth::authenticated;
use super::error::{respond, AppError};
use super::with;
use crate::auth::{add_user, remove_user, Admin, Auth, Gate, UserError};
use crate::model::{Changed, Edit, LeadChange, LeadStatus, Role, MAX_NOTE_CHARS};
use crate::store::Store;

/// The largest body these routes read: a note of 10,000 characters of four bytes each, and room.
const MAX_BODY: u64 = 64 * 1024;

#[derive(Clone)]
pub struct TeamContext {
    pub store: Store,
    pub gate: Gate,
}

pub fn routes(ctx: TeamContext) -> BoxedFilter<(Response,)> {
    detail(ctx.clone())
        .or(change(ctx.clone()))
        .unify()
        .or(note(ctx.clone()))
        .unify()
        .or(users(ctx.clone()))
        .unify()
        .or(new_user(ctx.clone()))
        .unify()
        .or(delete_user(ctx))
        .unify()
        .boxed()
}

/// A JSON body of at most [`MAX_BODY`] bytes, read as bytes so a bad one gets our own 400.
fn body() -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY).and(warp::body::bytes())
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| AppError::BadRequest(format!("bad JSON body: {e}")))
}

fn admin(auth: &Auth) -> Result<Admin, AppError> {
    auth.admin()
        .ok_or(AppError::Forbidden("only an admin may manage users"))
}

/// GET /api/leads/{id} — the lead, its notes and its history.
fn detail(ctx: TeamContext) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "leads" / i64)
        .and(warp::get())
        .and(with(ctx.clone()))
        .and(authenticated(ctx.gate))
        .then(lead_detail)
        .map(respond)
}

async fn lead_detail(id: i64, ctx: TeamContext, _auth: Auth) -> Result<Response, AppError> {
    let detail = ctx.store.lead_detail(id).await?.ok_or(AppError::NotFound)?;
    Ok(warp::reply::json(&detail).into_response())
}

/// `"owner"` absent (leave it), `null` (release the lead) or a name.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    status: Option<String>,
    #[serde(default, deserialize_with = "present")]
    owner: Option<Option<String>>,
    version: Option<i64>,
}

/// PATCH /api/leads/{id} — `{"status"?, "owner"?, "version"}`: 200 and the lead; 409 and the
/// lead as it is now when `version` is not its version.
fn change(ctx: TeamContext) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "leads" / i64)
        .and(warp::patch())
        .and(with(ctx.clone()))
        .and(body())
        .and(authenticated(ctx.gate))
        .then(change_lead)
        .map(respond)
}

async fn change_lead(
    id: i64,
    ctx: TeamContext,
    body: Bytes,
    auth: Auth,
) -> Result<Response, AppError> {
    let patch: Patch = parse(&body)?;
    let version = patch.version.ok_or_else(|| {
        AppError::BadRequest(
            "version is required: the lead's version the change was made on".into(),
        )
    })?;
    let status = match patch.status {
        None => None,
        Some(s) => Some(
            LeadStatus::parse(&s).ok_or_else(|| AppError::BadRequest(LeadStatus::unknown(&s)))?,
        ),
    };
    let owner = patch.owner.map(|o| {
        o.map(|name| name.trim().to_string())
            .filter(|n| !n.is_empty())
    });
    let edit = Edit::Set { status, owner };
    commit(&ctx, id, Some(version), edit, &auth).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNote {
    text: String,
}

/// POST /api/leads/{id}/notes — `{"text"}`: 201 and the note.
fn note(ctx: TeamContext) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "leads" / i64 / "notes")
        .and(warp::post())
        .and(with(ctx.clone()))
        .and(body())
        .and(authenticated(ctx.gate))
        .then(add_note)
        .map(respond)
}

async fn add_note(
    id: i64,
    ctx: TeamContext,
    body: Bytes,
    auth: Auth,
) -> Result<Response, AppError> {
    let NewNote { text } = parse(&body)?;
    let chars = text.chars().count();
    if text.trim().is_empty() || chars > MAX_NOTE_CHARS {
        return Err(AppError::BadRequest(format!(
            "a note is 1 to {MAX_NOTE_CHARS} characters, not blank; this one has {chars}"
        )));
    }
    commit(&ctx, id, None, Edit::Note(text), &auth).await
}

/// Commits a change by whoever `auth` is, and answers for it.
async fn commit(
    ctx: &TeamContext,
    lead_id: i64,
    version: Option<i64>,
    edit: Edit,
    auth: &Auth,
) -> Result<Response, AppError> {
    let is_note = matches!(edit, Edit::Note(_));
    let change = LeadChange {
        lead_id,
        by: auth.principal().name().to_string(),
        version,
        edit,
    };
    match ctx.store.change_lead(change).await? {
        Changed::Done {
            note: Some(note), ..
        } if is_note => Ok(
            warp::reply::with_status(warp::reply::json(&note), StatusCode::CREATED).into_response(),
        ),
        Changed::Done { lead, .. } | Changed::Unchanged(lead) => {
            Ok(warp::reply::json(&lead).into_response())
        }
        Changed::Stale(lead) => Ok(warp::reply::with_status(
            warp::reply::json(&lead),
            StatusCode::CONFLICT,
        )
        .into_response()),
        Changed::NoSuchLead => Err(AppError::NotFound),
        Changed::NoSuchUser(name) => Err(AppError::BadRequest(format!(
            "there is no user named {name:?}"
        ))),
    }
}

/// GET /api/users — every user's name and role (for the owner picker: members may list).
fn users(ctx: TeamContext) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "users")
        .and(warp::get())
        .and(with(ctx.clone()))
        .and(authenticated(ctx.gate))
        .then(list_users)
        .map(respond)
}

async fn list_users(ctx: TeamContext, auth: Auth) -> Result<Response, AppError> {
    Ok(warp::reply::json(&json!({
        "users": ctx.store.users().await?,
        "me": {"name": auth.principal().name(), "role": auth.principal().role()},
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

/// POST /api/users — `{"name","password","admin"?}` (admins only): 201 and the user.
fn new_user(ctx: TeamContext) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "users")
        .and(warp::post())
        .and(with(ctx.clone()))
        .and(body())
        .and(authenticated(ctx.gate))
        .then(create_user)
        .map(respond)
}

async fn create_user(ctx: TeamContext, body: Bytes, auth: Auth) -> Result<Response, AppError> {
    let _admin = admin(&auth)?;
    let u: NewUser = parse(&body)?;
    let role = if u.admin { Role::Admin } else { Role::Member };
    let user = add_user(&ctx.store, u.name.trim(), &u.password, role)
        .await
        .map_err(user_error)?;
    Ok(warp::reply::with_status(warp::reply::json(&user), StatusCode::CREATED).into_response())
}

/// DELETE /api/users/{name} (admins only): 204; the user's sessions and streams end.
fn delete_user(ctx: TeamContext) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("api" / "users" / String)
        .and(warp::delete())
        .and(with(ctx.clone()))
        .and(authenticated(ctx.gate))
        .then(drop_user)
        .map(respond)
}

async fn drop_user(name: String, ctx: TeamContext, auth: Auth) -> Result<Response, AppError> {
    let _admin = admin(&auth)?;
    // Names are letters, digits and `._-@`; only `@` may arrive percent-encoded.
    let name = name.replace("%40", "@");
    remove_user(&ctx.store, &name).await.map_err(user_error)?;
    ctx.gate.end_user_sessions(&name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn user_error(e: UserError) -> AppError {
    match e {
        UserError::Invalid(why) => AppError::BadRequest(why),
        UserError::Exists(_) => AppError::BadRequest(e.to_string()),
        UserError::NoSuchUser(_) => AppError::NotFound,
        UserError::Store(e) => e.into(),
    }
}
