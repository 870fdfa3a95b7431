// A run kept current while it runs: read once, then the run's event stream says when it
// changed and the run is read again (events carry s3:// references and no step details; the
// read answers fresh URLs and everything the page shows). Reads are throttled, so a map of
// hundreds of items costs a few reads a second, not one per item.

import { useEffect } from "preact/hooks";
import { getRun, streamRunEvents } from "./api.js";
import { isLive, useLoad } from "./util.js";

const THROTTLE_MS = 300;
const RECONNECT_MS = 2000;

const pause = (millis, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, millis);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

export function useRunLive(runId, initial) {
  const state = useLoad(() => (runId ? getRun(runId) : Promise.resolve(initial)), runId);
  const live = isLive(state.data);

  useEffect(() => {
    if (!runId || !live) return undefined;
    const stop = new AbortController();
    let timer = null;
    const changed = () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        state.reload(true);
      }, THROTTLE_MS);
    };
    (async () => {
      while (!stop.signal.aborted) {
        try {
          await streamRunEvents(runId, changed, stop.signal);
        } catch (error) {
          if (stop.signal.aborted || error.status === 401 || error.status === 404) return;
        }
        if (stop.signal.aborted) return;
        // The stream closes when the run ends (or broke): the stored run decides. Should the
        // run still be live, the stream is opened again after a pause.
        await state.reload(true);
        await pause(RECONNECT_MS, stop.signal);
      }
    })();
    return () => {
      stop.abort();
      clearTimeout(timer);
    };
  }, [runId, live]);

  return state;
}
