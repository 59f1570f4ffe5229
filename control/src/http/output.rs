//! A running job's live results over HTTP: its sinks' sampled rows (`crate::output`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/jobs/{id}/output?after=&sink=&limit=` | `JobOutputView`: the rows taken in after `after` (0: all kept), of one sink or all |
//! | `GET /api/jobs/{id}/output/stream?sink=&after=` | server-sent `rows` events: the rows kept, then every [`STREAM_INTERVAL`] those taken in since (all kept again, under a new `epoch`, after a leader change) |
//!
//! Any master answers: a follower asks the leader, which keeps the rows.

use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use tonic::{Code, Request};

use super::{code_name, ApiError};
use crate::output::JobOutputView;
use crate::rpc::proto::control_server::Control;
use crate::rpc::proto::JobOutputRequest;

/// How often a stream sends the rows taken in since its last event.
pub const STREAM_INTERVAL: Duration = Duration::from_secs(1);

/// The query of both routes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
    /// Rows numbered after this one (`n` of the last row seen; 0 or none: every row kept).
    pub after: Option<u64>,
    /// One sink's rows (its table's name); none: every sink's.
    pub sink: Option<String>,
    /// The newest this many rows per sink at most (and at most 2,000).
    pub limit: Option<u32>,
}

/// The routes, answered by `control` (a master's `Control` service).
pub fn router<C: Control + Clone>(control: C) -> Router {
    Router::new()
        .route("/api/jobs/{id}/output", get(output::<C>))
        .route("/api/jobs/{id}/output/stream", get(stream::<C>))
        .with_state(control)
}

fn ask(id: Result<Path<u64>, PathRejection>, query: Result<Query<OutputQuery>, QueryRejection>) -> Result<JobOutputRequest, ApiError> {
    let Path(job_id) = id.map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad job id: {}", rejection.body_text())))?;
    let Query(query) =
        query.map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad output query: {}", rejection.body_text())))?;
    Ok(JobOutputRequest { job_id, after: query.after.unwrap_or(0), sink: query.sink.unwrap_or_default(), limit: query.limit.unwrap_or(0) })
}

async fn fetch<C: Control>(control: &C, ask: JobOutputRequest) -> Result<JobOutputView, ApiError> {
    let reply = control.job_output(Request::new(ask)).await?.into_inner();
    serde_json::from_str(&reply.json).map_err(|error| ApiError::new(Code::Internal, format!("the leader's rows do not parse: {error}")))
}

#[utoipa::path(get, path = "/api/jobs/{id}/output", tag = "jobs",
    params(("id" = u64, Path, description = "The job's id"), OutputQuery),
    responses((status = 200, description = "The job's sinks' sampled rows taken in after `after`, oldest first", body = JobOutputView),
              (status = 400, description = "A bad id or query", body = super::openapi::ErrorBody),
              (status = 404, description = "No such job, or no such sink with sampled rows", body = super::openapi::ErrorBody),
              (status = 503, description = "No leader known", body = super::openapi::ErrorBody)))]
pub(crate) async fn output<C: Control>(
    State(control): State<C>,
    id: Result<Path<u64>, PathRejection>,
    query: Result<Query<OutputQuery>, QueryRejection>,
) -> Result<Json<JobOutputView>, ApiError> {
    Ok(Json(fetch(&control, ask(id, query)?).await?))
}

#[utoipa::path(get, path = "/api/jobs/{id}/output/stream", tag = "live",
    params(("id" = u64, Path, description = "The job's id"), OutputQuery),
    responses((status = 200, description = "A stream of server-sent events: `rows` (a JobOutputView as JSON) with the rows kept at once, then every second with the rows taken in since (only when there are some); `error` (an ErrorBody) when they could not be read, and the stream goes on", content_type = "text/event-stream", body = JobOutputView),
              (status = 400, description = "A bad id or query", body = super::openapi::ErrorBody)))]
pub(crate) async fn stream<C: Control + Clone>(
    State(control): State<C>,
    id: Result<Path<u64>, PathRejection>,
    query: Result<Query<OutputQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let first = ask(id, query)?;
    let stream = futures_util::stream::unfold((control, first, None, true), |(control, mut ask, mut epoch, first)| async move {
        if !first {
            tokio::time::sleep(STREAM_INTERVAL).await;
        }
        let mut fetched = fetch(&control, ask.clone()).await;
        if let Ok(view) = &fetched {
            if epoch.is_some_and(|epoch| epoch != view.epoch) && ask.after > 0 {
                // Another leader numbers the rows anew: start over (the reader sees the epoch
                // change and starts over too).
                ask.after = 0;
                fetched = fetch(&control, ask.clone()).await;
            }
        }
        let event = match fetched {
            Ok(view) => match view.sinks.iter().filter_map(|sink| sink.rows.last()).map(|row| row.n).max() {
                // Nothing new: a comment keeps the connection open until the next interval.
                None if !first && epoch == Some(view.epoch) => Ok(Event::default().comment("no new rows")),
                newest => {
                    ask.after = newest.unwrap_or(ask.after);
                    epoch = Some(view.epoch);
                    Event::default().event("rows").json_data(view)
                }
            },
            Err(error) => Event::default()
                .event("error")
                .json_data(super::openapi::ErrorBody { error: error.message, code: code_name(error.code).to_string() }),
        };
        let event = event.unwrap_or_else(|_| Event::default().comment("unserializable"));
        Some((Ok(event), (control, ask, epoch, false)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
