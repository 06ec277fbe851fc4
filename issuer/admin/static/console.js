// Progressive enhancement only: every page works without this file (it adds live
// updates where the no-JS page offers a refresh link or a <noscript> meta refresh).
"use strict";
(function () {
  const POLL_MS = 1500;

  function poll(url, onData, done) {
    const tick = () =>
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
        .then((data) => { onData(data); if (!done(data)) setTimeout(tick, POLL_MS); })
        .catch(() => setTimeout(tick, POLL_MS * 4));
    tick();
  }

  // Ledger entry states on a credential page: pending -> sequenced -> anchored -> cosigned.
  document.querySelectorAll("[data-poll-entry]").forEach((el) => {
    if (el.textContent.trim() === "cosigned") return;
    const url = "/console/entries/" + el.dataset.pollEntry + ".json";
    const row = el.closest("tr");
    const cell = row && row.querySelector(".log-index");
    const by = row && row.querySelector(".cosigners");
    // "by {}" in the admin's language, from the page (the server translated it).
    const byWords = (el.closest("table") && el.closest("table").dataset.by) || "by {}";
    poll(url, (d) => {
      el.textContent = d.state; el.className = "entry-state " + d.state;
      if (cell && d.log_index !== null) cell.textContent = d.log_index;
      // Which members' witnesses cosigned the checkpoint covering the entry.
      if (by) by.textContent = d.witnesses && d.witnesses.length ? byWords.replace("{}", d.witnesses.join(", ")) : "";
    },
      (d) => d.state === "cosigned");
  });

  // Bulk job progress bar.
  const job = document.getElementById("job");
  if (job && job.dataset.progressUrl) {
    const bar = document.getElementById("job-bar");
    poll(job.dataset.progressUrl, (d) => {
      bar.max = d.total; bar.value = d.done;
      document.getElementById("job-done").textContent = d.done;
      const st = document.getElementById("job-state");
      st.textContent = d.state; st.className = "state " + d.state;
      document.getElementById("job-message").textContent = d.message;
    }, (d) => d.state === "finished" || d.state === "failed");
  }
})();
