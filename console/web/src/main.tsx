// The console's shell: the navigation, the live connection's state, and the page for the path.
import { render } from "preact";
import { api, whenUnauthorized } from "./api/client";
import { disconnect, useLive } from "./live";
import { ClusterPage } from "./pages/Cluster";
import { DeployPage } from "./pages/Deploy";
import { JobPage } from "./pages/Job";
import { JobsPage } from "./pages/Jobs";
import { LoginPage } from "./pages/Login";
import { LogsPage } from "./pages/Logs";
import { WorkbenchPage } from "./pages/Workbench";
import { CanvasPage } from "./pages/Canvas";
import { ResultsPage } from "./pages/Results";
import { href, navigate, usePath } from "./router";

whenUnauthorized(() => {
  disconnect();
  if (!location.pathname.startsWith("/login")) navigate(`/login?next=${encodeURIComponent(location.pathname)}`);
});

function Shell({ path }: { path: string }) {
  const { connection, snapshot } = useLive();
  const [route] = path.split("?");
  const query = new URLSearchParams(path.split("?")[1] ?? "");
  const job = /^\/jobs\/(\d+)$/.exec(route);
  const results = /^\/jobs\/(\d+)\/results$/.exec(route);
  const copy = query.get("copy");
  let page;
  if (job) page = <JobPage id={Number(job[1])} />;
  else if (results) page = <ResultsPage key={results[1]} id={Number(results[1])} />;
  else if (route === "/cluster") page = <ClusterPage />;
  else if (route === "/workbench") page = <WorkbenchPage />;
  else if (route === "/canvas") page = <CanvasPage />;
  else if (route === "/logs") page = <LogsPage key={`${query.get("worker") ?? ""}|${query.get("q") ?? ""}`} worker={query.get("worker")} q={query.get("q") ?? ""} />;
  else if (route === "/deploy") page = <DeployPage key={copy ?? ""} copy={copy === null ? undefined : Number(copy)} />;
  else page = <JobsPage />;
  const logout = async () => {
    await api.logout().catch(() => {});
    disconnect();
    navigate("/login");
  };
  const leader = snapshot?.cluster.leader;
  return (
    <>
      <header>
        <a class="brand" {...href("/jobs")}>Tethys</a>
        <nav>
          <a class={route.startsWith("/jobs") || route === "/" ? "active" : ""} {...href("/jobs")}>Jobs</a>
          <a class={route === "/workbench" ? "active" : ""} {...href("/workbench")}>Workbench</a>
          <a class={route === "/canvas" ? "active" : ""} {...href("/canvas")}>Canvas</a>
          <a class={route === "/deploy" ? "active" : ""} {...href("/deploy")}>Deploy</a>
          <a class={route === "/cluster" ? "active" : ""} {...href("/cluster")}>Cluster</a>
          <a class={route === "/logs" ? "active" : ""} {...href("/logs")}>Logs</a>
        </nav>
        <span id="connection" class={`connection ${connection}`} title="Live data from /api/events">
          {connection === "live" ? `live · leader ${leader ?? "unknown"}` : connection}
        </span>
        <button class="link" onClick={logout}>Log out</button>
      </header>
      <main>{page}</main>
    </>
  );
}

function App() {
  const path = usePath();
  if (path.startsWith("/login")) {
    const next = new URLSearchParams(path.split("?")[1] ?? "").get("next") ?? "/jobs";
    return <LoginPage next={next} />;
  }
  return <Shell path={path} />;
}

render(<App />, document.getElementById("app")!);
