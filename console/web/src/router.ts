// Routing by the location's path: the server answers every path outside /api/ with the app.
import { useEffect, useState } from "preact/hooks";

const listeners = new Set<(path: string) => void>();

export function navigate(path: string) {
  if (path !== location.pathname + location.search) history.pushState(null, "", path);
  listeners.forEach((listener) => listener(path));
}

addEventListener("popstate", () => listeners.forEach((listener) => listener(location.pathname + location.search)));

/** The current path (with its query); re-renders the caller when it changes. */
export function usePath(): string {
  const [path, setPath] = useState(location.pathname + location.search);
  useEffect(() => {
    listeners.add(setPath);
    return () => {
      listeners.delete(setPath);
    };
  }, []);
  return path;
}

/** A link that navigates inside the app. */
export function href(path: string) {
  return {
    href: path,
    onClick: (event: MouseEvent) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      navigate(path);
    },
  };
}
