import { useLive } from "../live";
import { href } from "../router";

/** Masters with the leader and its term; workers with their slots and health. */
export function ClusterPage() {
  const { snapshot } = useLive();
  if (!snapshot) return <p>Waiting for the cluster…</p>;
  const { cluster } = snapshot;
  const slots = cluster.workers.filter((worker) => worker.alive).reduce((sum, worker) => sum + worker.slots, 0);
  const used = cluster.workers.filter((worker) => worker.alive).reduce((sum, worker) => sum + worker.slots_used, 0);
  return (
    <section>
      <h1>Cluster</h1>
      <p class="summary">
        <span id="leader">Leader: {cluster.leader === null || cluster.leader === undefined ? "none known" : `master ${cluster.leader}`}</span>
        {" · "}term {cluster.term} · answered by master {cluster.answered_by} · slots {used} used of {slots}
      </p>
      <h2>Masters</h2>
      <table>
        <thead>
          <tr><th>id</th><th>address</th><th>role</th><th>health</th><th>term</th><th>applied</th><th>last reached</th></tr>
        </thead>
        <tbody>
          {cluster.masters.map((master) => (
            <tr key={master.id} class={master.reachable ? "" : "down"} data-master={master.id}>
              <td>{master.id}</td>
              <td>{master.addr}</td>
              <td>{master.leader ? <span class="badge running">leader</span> : master.reachable ? "follower" : "—"}</td>
              <td class="health">
                {master.reachable ? (
                  <span class="badge running">up</span>
                ) : (
                  <span class="badge failed" title={master.error ?? ""}>unreachable</span>
                )}
              </td>
              <td>{master.term}</td>
              <td>{master.applied_index}</td>
              <td>{lastReached(master.seen_ms_ago, master.id === cluster.answered_by)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Workers</h2>
      <table>
        <thead>
          <tr><th>id</th><th>control address</th><th>data address</th><th>slots used / free</th><th>health</th></tr>
        </thead>
        <tbody>
          {cluster.workers.map((worker) => (
            <tr key={worker.id}>
              <td>{worker.id}</td>
              <td>{worker.control_addr} · <a class="logs-link" {...href(`/logs?worker=${worker.id}`)}>logs</a></td>
              <td>{worker.data_addr}</td>
              <td>{worker.slots_used} / {worker.slots - worker.slots_used}</td>
              <td>{worker.alive ? <span class="badge running">alive</span> : <span class="badge failed">lost</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** When the answering master last reached a master: "itself", "now", "12 s ago", or "never". */
function lastReached(ms: number | null | undefined, itself: boolean): string {
  if (itself) return "answered";
  if (ms === null || ms === undefined) return "never";
  return ms < 1500 ? "now" : `${Math.round(ms / 1000)} s ago`;
}
