//! Live data for the console over server-sent events: `GET /api/events` streams a `snapshot`
//! event (the cluster and every job, as `GET /api/cluster` and `GET /api/jobs` answer them) at
//! once and then every [`SNAPSHOT_INTERVAL`], from the answering master's state, so a leader
//! change shows within one interval and a follower keeps streaming through it. A call that fails
//! (a master shutting down) sends an `error` event with the error's JSON, and the stream goes on.

use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tonic::Request;

use super::api::{ClusterView, JobView};
use super::{code_name, ApiError};
use crate::rpc::proto::control_server::Control;
use crate::rpc::proto::{ClusterRequest, ListJobsRequest};

/// How often a snapshot is sent.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

/// The path.
pub const PATH: &str = "/api/events";

/// The data of a `snapshot` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// The cluster, as `GET /api/cluster` answers.
    pub cluster: ClusterView,
    /// Every job, oldest first, as `GET /api/jobs` answers.
    pub jobs: Vec<JobView>,
}

/// The events route, answered by `control` (a master's `Control` service).
pub fn router<C: Control + Clone>(control: C) -> Router {
    Router::new().route(PATH, get(events::<C>)).with_state(control)
}

/// The cluster and its jobs, streamed.
#[utoipa::path(get, path = "/api/events", tag = "live",
    responses((status = 200, description = "A stream of server-sent events: `snapshot` (a Snapshot as JSON) now and then every second; `error` (an ErrorBody) when one could not be taken", content_type = "text/event-stream", body = Snapshot)))]
async fn events<C: Control + Clone>(State(control): State<C>) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let stream = futures_util::stream::unfold((control, true), |(control, first)| async move {
        if !first {
            tokio::time::sleep(SNAPSHOT_INTERVAL).await;
        }
        let event = match snapshot(&control).await {
            Ok(snapshot) => Event::default().event("snapshot").json_data(snapshot),
            Err(error) => Event::default()
                .event("error")
                .json_data(super::openapi::ErrorBody { error: error.message, code: code_name(error.code).to_string() }),
        };
        // Serializing our own types does not fail; if it ever did, a comment keeps the stream alive.
        let event = event.unwrap_or_else(|_| Event::default().comment("unserializable"));
        Some((Ok(event), (control, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The cluster and its jobs now.
pub async fn snapshot<C: Control>(control: &C) -> Result<Snapshot, ApiError> {
    let cluster = control.cluster(Request::new(ClusterRequest {})).await?.into_inner().into();
    let jobs = control.list_jobs(Request::new(ListJobsRequest {})).await?.into_inner().jobs.into_iter().map(JobView::from).collect();
    Ok(Snapshot { cluster, jobs })
}
