//! Programs of users' own (`crate::programs`): uploaded to the masters, listed, deleted. A job of
//! one is submitted with `POST /api/jobs` naming the program's id.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/programs` with the program's executable as the body | 201 and its [`ProgramView`]; 400 for a file that is not a Tethys program of this version, 413 over `PROGRAM_BYTES_MAX` |
//! | `GET /api/programs` | [`ProgramListView`]: every uploaded program |
//! | `GET /api/programs/{id}` | [`ProgramView`], or 404 |
//! | `DELETE /api/programs/{id}` | 204; 404 for an unknown program, 409 while a job of it has not ended |
//!
//! An upload is streamed into the program store as it arrives (it is not bound by the API's body
//! limit, only by the program's); the answering master asks the program what it is, then the
//! registration goes through the log (a follower forwards it).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tonic::{Code, Request};

use super::ApiError;
use crate::rpc::proto::control_server::Control;
use crate::rpc::proto::{ListProgramsRequest, ProgramMessage, ProgramRequest};
use crate::rpc::server::ControlPlane;

/// An uploaded program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProgramView {
    /// Its id: the SHA-256 of its file, in hex (what a submission names).
    pub id: String,
    /// Its name, as its author gave it.
    pub program: String,
    /// The version of Tethys it was built with.
    pub tethys_version: String,
    /// Its build id.
    pub build_id: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded (milliseconds since the Unix epoch).
    pub uploaded_at_ms: u64,
    /// The jobs it defines, its own first.
    pub jobs: Vec<crate::programs::JobAbout>,
}

/// Every uploaded program (`GET /api/programs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProgramListView {
    /// The programs, by id.
    pub programs: Vec<ProgramView>,
}

impl From<ProgramMessage> for ProgramView {
    fn from(message: ProgramMessage) -> ProgramView {
        ProgramView {
            id: message.id,
            program: message.program,
            tethys_version: message.tethys_version,
            build_id: message.build_id,
            size: message.size,
            uploaded_at_ms: message.uploaded_at_ms,
            jobs: message
                .jobs
                .into_iter()
                .map(|job| crate::programs::JobAbout { name: job.name, about: job.about, builtin: job.builtin })
                .collect(),
        }
    }
}

/// The programs' routes, answered by this master's control plane.
pub(crate) fn router(plane: Arc<ControlPlane>) -> Router {
    Router::new().route("/api/programs", get(list).post(upload)).route("/api/programs/{id}", get(one).delete(delete)).with_state(plane)
}

fn id_of(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id).map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad program id: {}", rejection.body_text())))
}

#[utoipa::path(post, path = "/api/programs", tag = "programs",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The program's executable"),
    responses((status = 201, description = "The program, uploaded and registered", body = ProgramView),
              (status = 400, description = "Not a Tethys program of this version, or an upload that broke off", body = super::openapi::ErrorBody),
              (status = 413, description = "Larger than a program may be", body = super::openapi::ErrorBody),
              (status = 503, description = "No leader known", body = super::openapi::ErrorBody)))]
async fn upload(
    State(plane): State<Arc<ControlPlane>>,
    body: Body,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<ProgramView>), ApiError> {
    let uploaded = plane.upload(body.into_data_stream()).await?;
    let location = [(header::LOCATION, format!("/api/programs/{}", uploaded.id))];
    Ok((StatusCode::CREATED, location, Json(uploaded.into())))
}

#[utoipa::path(get, path = "/api/programs", tag = "programs",
    responses((status = 200, description = "Every uploaded program", body = ProgramListView)))]
async fn list(State(plane): State<Arc<ControlPlane>>) -> Result<Json<ProgramListView>, ApiError> {
    let reply = plane.list_programs(Request::new(ListProgramsRequest {})).await?.into_inner();
    Ok(Json(ProgramListView { programs: reply.programs.into_iter().map(ProgramView::from).collect() }))
}

#[utoipa::path(get, path = "/api/programs/{id}", tag = "programs", params(("id" = String, Path, description = "The program's id")),
    responses((status = 200, description = "The program", body = ProgramView),
              (status = 404, description = "No such program", body = super::openapi::ErrorBody)))]
async fn one(State(plane): State<Arc<ControlPlane>>, id: Result<Path<String>, PathRejection>) -> Result<Json<ProgramView>, ApiError> {
    let id = id_of(id)?;
    let reply = plane.list_programs(Request::new(ListProgramsRequest {})).await?.into_inner();
    let found = reply.programs.into_iter().find(|program| program.id == id);
    found.map(|program| Json(program.into())).ok_or_else(|| ApiError::new(Code::NotFound, format!("no program {id} was uploaded")))
}

#[utoipa::path(delete, path = "/api/programs/{id}", tag = "programs", params(("id" = String, Path, description = "The program's id")),
    responses((status = 204, description = "Removed"),
              (status = 404, description = "No such program", body = super::openapi::ErrorBody),
              (status = 409, description = "A job of it has not ended", body = super::openapi::ErrorBody)))]
async fn delete(State(plane): State<Arc<ControlPlane>>, id: Result<Path<String>, PathRejection>) -> Result<StatusCode, ApiError> {
    let id = id_of(id)?;
    plane.delete_program(Request::new(ProgramRequest { id })).await?;
    Ok(StatusCode::NO_CONTENT)
}
