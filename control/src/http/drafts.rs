//! Drafts of SQL jobs, saved from the console's workbench with versions, kept in the masters'
//! replicated state (a leader change loses none), and the difference between two versions.
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/drafts` | [`DraftListView`]: every draft with its versions (numbers, times, notes) |
//! | `POST /api/drafts/{name}` with [`SaveDraftAsk`] | 201 and the new [`DraftVersionView`] |
//! | `GET /api/drafts/{name}?version=N` | [`DraftVersionView`] with its texts (default: the newest) |
//! | `GET /api/drafts/{name}/diff?from=A&to=B` | [`DraftDiffView`]: the scripts' lines, same, removed or added |
//! | `DELETE /api/drafts/{name}` | 204 |

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tonic::{Code, Request};

use super::ApiError;
use crate::rpc::proto::control_server::Control;
use crate::rpc::proto::{DeleteDraftRequest, DraftVersionInfo, GetDraftRequest, ListDraftsRequest, SaveDraftRequest};

/// `POST /api/drafts/{name}`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveDraftAsk {
    /// The script.
    pub script: String,
    /// The workbench's test case (inputs and expected rows, JSON), if any.
    pub test_case: Option<String>,
    /// What changed.
    pub note: Option<String>,
}

/// A version of a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DraftVersionView {
    /// The draft.
    pub name: String,
    /// Its number (from 1).
    pub version: u32,
    /// When it was saved (milliseconds since the Unix epoch).
    pub saved_at_ms: u64,
    /// What changed, or empty.
    pub note: String,
    /// The script (null in a list).
    pub script: Option<String>,
    /// The test case (null in a list or when none was saved).
    pub test_case: Option<String>,
}

/// A draft and its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DraftView {
    /// Its name.
    pub name: String,
    /// Its kept versions, oldest first (without texts).
    pub versions: Vec<DraftVersionView>,
}

/// Every draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DraftListView {
    /// By name.
    pub drafts: Vec<DraftView>,
}

/// `GET /api/drafts/{name}`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DraftQuery {
    /// The version (default: the newest).
    pub version: Option<u32>,
}

/// `GET /api/drafts/{name}/diff`'s query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The older version.
    pub from: u32,
    /// The newer version (default: the newest).
    pub to: Option<u32>,
}

/// A line of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffLineView {
    /// same, removed (only in `from`) or added (only in `to`).
    pub change: String,
    /// The line, without its end.
    pub text: String,
    /// Its number in `from` (from 1), if there.
    pub from_line: Option<u32>,
    /// Its number in `to`, if there.
    pub to_line: Option<u32>,
}

/// Two versions of a draft's script, line by line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DraftDiffView {
    /// The draft.
    pub name: String,
    /// The older version.
    pub from: u32,
    /// The newer version.
    pub to: u32,
    /// Every line, in order.
    pub lines: Vec<DiffLineView>,
}

/// The drafts' routes, answered by `control`.
pub fn router<C: Control + Clone>(control: C) -> Router {
    Router::new()
        .route("/api/drafts", get(list::<C>))
        .route("/api/drafts/{name}", get(version::<C>).post(save::<C>).delete(delete::<C>))
        .route("/api/drafts/{name}/diff", get(diff::<C>))
        .with_state(control)
}

fn view(info: DraftVersionInfo) -> DraftVersionView {
    DraftVersionView {
        name: info.name,
        version: info.version,
        saved_at_ms: info.saved_at_ms,
        note: info.note,
        script: (!info.script.is_empty()).then_some(info.script),
        test_case: (!info.test_case.is_empty()).then_some(info.test_case),
    }
}

fn name_of(name: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    name.map(|Path(name)| name)
        .map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad draft name: {}", rejection.body_text())))
}

#[utoipa::path(get, path = "/api/drafts", tag = "sql",
    responses((status = 200, description = "Every draft with its versions", body = DraftListView)))]
async fn list<C: Control>(State(control): State<C>) -> Result<Json<DraftListView>, ApiError> {
    let reply = control.list_drafts(Request::new(ListDraftsRequest {})).await?.into_inner();
    let drafts = reply
        .drafts
        .into_iter()
        .map(|draft| DraftView { name: draft.name, versions: draft.versions.into_iter().map(view).collect() })
        .collect();
    Ok(Json(DraftListView { drafts }))
}

#[utoipa::path(post, path = "/api/drafts/{name}", tag = "sql", params(("name" = String, Path, description = "The draft's name")),
    request_body = SaveDraftAsk,
    responses((status = 201, description = "The new version", body = DraftVersionView),
              (status = 400, description = "A bad body, name or size", body = super::openapi::ErrorBody),
              (status = 503, description = "No leader known", body = super::openapi::ErrorBody)))]
async fn save<C: Control>(
    State(control): State<C>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<DraftVersionView>), ApiError> {
    let name = name_of(name)?;
    let ask: SaveDraftAsk = serde_json::from_slice(&body.map_err(super::api::body_error)?)
        .map_err(|error| ApiError::new(Code::InvalidArgument, format!("bad draft JSON: {error}")))?;
    let request =
        SaveDraftRequest { name, script: ask.script, test_case: ask.test_case.unwrap_or_default(), note: ask.note.unwrap_or_default() };
    let saved = control.save_draft(Request::new(request)).await?.into_inner();
    Ok((StatusCode::CREATED, Json(view(saved))))
}

#[utoipa::path(get, path = "/api/drafts/{name}", tag = "sql", params(("name" = String, Path, description = "The draft's name"), DraftQuery),
    responses((status = 200, description = "The version, with its texts", body = DraftVersionView),
              (status = 404, description = "No such draft or version", body = super::openapi::ErrorBody)))]
async fn version<C: Control>(
    State(control): State<C>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<DraftQuery>, QueryRejection>,
) -> Result<Json<DraftVersionView>, ApiError> {
    let name = name_of(name)?;
    let Query(query) = query.map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad query: {}", rejection.body_text())))?;
    let found = control.get_draft(Request::new(GetDraftRequest { name, version: query.version.unwrap_or(0) })).await?.into_inner();
    Ok(Json(view(found)))
}

#[utoipa::path(get, path = "/api/drafts/{name}/diff", tag = "sql", params(("name" = String, Path, description = "The draft's name"), DiffQuery),
    responses((status = 200, description = "The two versions' scripts, line by line", body = DraftDiffView),
              (status = 400, description = "A bad query", body = super::openapi::ErrorBody),
              (status = 404, description = "No such draft or version", body = super::openapi::ErrorBody)))]
async fn diff<C: Control>(
    State(control): State<C>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<DraftDiffView>, ApiError> {
    let name = name_of(name)?;
    let Query(query) = query.map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad query: {}", rejection.body_text())))?;
    let get = |version: u32| control.get_draft(Request::new(GetDraftRequest { name: name.clone(), version }));
    let old = get(query.from).await?.into_inner();
    let new = get(query.to.unwrap_or(0)).await?.into_inner();
    Ok(Json(DraftDiffView { name: name.clone(), from: old.version, to: new.version, lines: line_diff(&old.script, &new.script) }))
}

/// `old` and `new` line by line (Myers' diff).
fn line_diff(old: &str, new: &str) -> Vec<DiffLineView> {
    let diff = similar::TextDiff::configure().algorithm(similar::Algorithm::Myers).diff_lines(old, new);
    diff.iter_all_changes()
        .map(|change| DiffLineView {
            change: match change.tag() {
                similar::ChangeTag::Equal => "same",
                similar::ChangeTag::Delete => "removed",
                similar::ChangeTag::Insert => "added",
            }
            .to_string(),
            text: change.value().trim_end_matches(['\n', '\r']).to_string(),
            from_line: change.old_index().map(|index| index as u32 + 1),
            to_line: change.new_index().map(|index| index as u32 + 1),
        })
        .collect()
}

#[utoipa::path(delete, path = "/api/drafts/{name}", tag = "sql", params(("name" = String, Path, description = "The draft's name")),
    responses((status = 204, description = "Removed, with its versions"),
              (status = 404, description = "No such draft", body = super::openapi::ErrorBody)))]
async fn delete<C: Control>(State(control): State<C>, name: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    let name = name_of(name)?;
    control.delete_draft(Request::new(DeleteDraftRequest { name })).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_diff_names_each_line_and_its_numbers() {
        let lines = super::line_diff("SELECT a\nFROM t\n", "SELECT a, b\nFROM t\nWHERE b > 1\n");
        let shown: Vec<(&str, &str, Option<u32>, Option<u32>)> =
            lines.iter().map(|line| (line.change.as_str(), line.text.as_str(), line.from_line, line.to_line)).collect();
        assert_eq!(
            shown,
            [
                ("removed", "SELECT a", Some(1), None),
                ("added", "SELECT a, b", None, Some(1)),
                ("same", "FROM t", Some(2), Some(2)),
                ("added", "WHERE b > 1", None, Some(3)),
            ]
        );
    }
}
